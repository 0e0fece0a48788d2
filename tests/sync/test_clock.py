"""Clock jumps on a Raspberry Pi (no real-time clock): `filterd sync` as a process under
libfaketime (Debian's libfaketime: the whole process sees the faked wall clock).

Booted with 1970, the sync builds no report for a day that never happened and says why;
after a wrong jump into the future and back, the future reports still waiting are
withdrawn and the real days go on being reported, instead of none until that future date.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from .conftest import TZ, generate_days, make_event_db

REPO = Path(__file__).resolve().parents[2]
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
pytestmark = pytest.mark.integration


def sync(cfg: Path, at: datetime) -> subprocess.CompletedProcess:
    if not FAKETIME.exists():
        pytest.skip("libfaketime is not installed (scripts/apt-packages.txt has it)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LD_PRELOAD": str(FAKETIME),
           "FAKETIME": "@" + at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "TZ": "UTC"}
    return subprocess.run([sys.executable, "-m", "filterd", "sync", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def school(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    conn = make_event_db(data / "filterd.db")
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {data}\nschool_id: thcs-clock-01\ntimezone: Asia/Ho_Chi_Minh\n")
    yield cfg, data, conn
    conn.close()


def outbox_days(data: Path) -> list[str]:
    return sorted(p.name.rsplit("_", 1)[1].removesuffix(".json.gz")
                  for p in (data / "outbox").glob("*.json.gz"))


def test_booted_in_1970_no_report_for_a_day_that_never_happened(school):
    cfg, data, conn = school
    generate_days(conn, [date(2026, 11, 20)], per_day=40)
    r = sync(cfg, datetime(1970, 1, 1, 0, 5, tzinfo=UTC))
    assert r.returncode == 0, r.stderr
    assert "no report built" in r.stderr and "1970-01-01" in r.stderr, r.stderr
    assert outbox_days(data) == []
    state = data / "sync" / "state.json"
    assert not state.exists() or "1969" not in state.read_text()
    # NTP sets the clock: the real days are built as usual.
    r = sync(cfg, datetime(2026, 11, 22, 1, 0, tzinfo=TZ))
    assert r.returncode == 0, r.stderr
    assert outbox_days(data) == ["2026-11-20", "2026-11-21"]


def test_a_wrong_jump_into_the_future_does_not_lock_reports_out(school):
    cfg, data, conn = school
    days = [date(2026, 11, 20), date(2026, 11, 21)]
    generate_days(conn, days, per_day=40)
    assert sync(cfg, datetime(2026, 11, 21, 1, 0, tzinfo=TZ)).returncode == 0
    assert outbox_days(data) == ["2026-11-20"]
    # A bad NTP answer: 2036. The sync builds that "yesterday" (it cannot know yet).
    assert sync(cfg, datetime(2036, 3, 1, 1, 0, tzinfo=TZ)).returncode == 0
    assert "2036-02-29" in outbox_days(data)
    # The clock is right again: the future reports are withdrawn and the real day built.
    r = sync(cfg, datetime(2026, 11, 22, 1, 0, tzinfo=TZ))
    assert r.returncode == 0, r.stderr
    assert outbox_days(data) == ["2026-11-20", "2026-11-21"], (outbox_days(data), r.stdout)
    report = json.loads(gzip.decompress((data / "outbox" /
                                         "thcs-clock-01_2026-11-21.json.gz").read_bytes()))
    assert report["day"] == "2026-11-21"
    # And the next day after that too.
    generate_days(conn, [date(2026, 11, 22)], per_day=40, seed=9)
    assert sync(cfg, datetime(2026, 11, 23, 1, 0, tzinfo=TZ)).returncode == 0
    assert outbox_days(data)[-1] == "2026-11-22"
