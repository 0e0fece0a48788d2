"""End to end on loopback with the office as its own process (`filterd office serve`), on
SQLite and on a real PostgreSQL: several days arrive with equal totals, three days with the
office stopped then every day arrives exactly once, and bad uploads are refused with a clear
error while nothing is stored."""

import gzip
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from filterd.sync import schema
from filterd.sync.office.storage import Storage
from filterd.sync.outbox import Outbox, run_sync
from filterd.sync.report import day_bounds
from filterd.sync.signing import Credential, sign
from filterd.sync.uploader import Uploader, enrol

from .conftest import TZ, appliance_total, free_port, generate_days, new_pg_database, wait_until
from .conftest import post_report as post

REPO = Path(__file__).resolve().parents[2]
D0 = date(2026, 11, 16)
DETAIL = ("reports", "report_counts", "report_top", "report_devices", "report_bypass")
pytestmark = pytest.mark.integration


def morning(day: date) -> datetime:
    n = day + timedelta(days=1)
    return datetime(n.year, n.month, n.day, 2, tzinfo=TZ)


class OfficeProcess:
    """`filterd office serve` in a subprocess, stopped and started again on the same port."""

    def __init__(self, db: str, tmp: Path) -> None:
        self.db, self.port, self.tmp = db, free_port(), tmp
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/api/v1/health", timeout=2):
                return True
        except OSError:
            return False

    def start(self) -> None:
        self.log = open(self.tmp / f"office-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "filterd", "office", "serve", "--database-url", self.db,
             "--listen", f"127.0.0.1:{self.port}"],
            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=self.log, stderr=self.log)
        if not wait_until(lambda: self.up() or self.proc.poll() is not None, 60) \
                or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("office did not start: "
                                 + (self.tmp / f"office-{self.port}.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None
        self.log.close()
        assert not self.up()

    def cli(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "filterd", "office", *args, "--database-url",
                            self.db], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        assert r.returncode == 0, r.stderr
        return r.stdout


@pytest.fixture(params=["sqlite", "postgres"])
def office_db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'office' / 'office.db'}"
    return new_pg_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def office_process(office_db, tmp_path):
    office = OfficeProcess(office_db, tmp_path)
    office.start()
    yield office
    if office.proc:
        office.stop()


def test_office_process_outage_and_refusals(office_process, appliance):
    settings, conn = appliance
    office = office_process
    days = [D0 + timedelta(days=i) for i in range(7)]
    generate_days(conn, days)
    code = office.cli("enrol", "--id", settings.school_id, "--name", "THCS Ba Đình",
                      "--district", "Ba Đình", "--province", "Hà Nội").strip()
    cred = Credential.generate(settings.school_id)
    enrol(office.url, cred, code)
    up = Uploader(office.url, cred, timeout=10)
    st = Storage(office.db)

    # two ordinary days: delivered at once, the office's totals equal the appliance's
    r = run_sync(settings, up, now=morning(days[1]), sleep=lambda _: None)
    assert r.delivered == [days[0].isoformat(), days[1].isoformat()] and r.error is None

    # the office process is stopped for three daily runs
    office.stop()
    for i in (2, 3, 4):
        r = run_sync(settings, up, now=morning(days[i]), sleep=lambda _: None)
        assert r.built == [days[i].isoformat()] and "office unreachable" in r.error, r
        assert r.pending == [d.isoformat() for d in days[2:i + 1]]
    assert st.query("SELECT COUNT(*) FROM reports")[0][0] == 2

    # it comes back: the next daily run delivers every missed day and the new one, each once
    office.start()
    r = run_sync(settings, up, now=morning(days[5]), sleep=lambda _: None)
    assert r.delivered == [d.isoformat() for d in days[2:6]] and r.pending == []
    rows = st.query("SELECT day, COUNT(*) FROM reports GROUP BY day ORDER BY day")
    assert [(d, int(n)) for d, n in rows] == [(d.isoformat(), 1) for d in days[:6]]
    for d in days[:6]:
        office_total = st.query("SELECT SUM(n) FROM report_counts WHERE school_id = ? AND"
                                " day = ?", [settings.school_id, d.isoformat()])[0][0]
        assert int(office_total) == appliance_total(conn, d) > 0
    start, _ = day_bounds(days[0], TZ)
    _, end = day_bounds(days[5], TZ)
    app_blocks = dict(conn.execute(
        "SELECT category, SUM(n) FROM counts WHERE action = 'block' AND hour >= ? AND hour < ?"
        " GROUP BY category", [start.strftime("%Y-%m-%dT%H"), end.strftime("%Y-%m-%dT%H")]))
    office_blocks = {c: int(n) for c, n in st.query(
        "SELECT category, SUM(n) FROM report_counts WHERE action = 'block' GROUP BY category")}
    # per category as counted, less what k-anonymity rolled up into `other`
    assert sum(office_blocks.values()) == sum(app_blocks.values()) and len(app_blocks) >= 5
    assert all(0 < office_blocks[c] <= n for c, n in app_blocks.items())

    # the seventh day's report, refused in every bad form; nothing of it is stored
    body = schema.encode(next(Outbox(settings).build_reports([days[6]], morning(days[6]))))
    before = [st.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in DETAIL]
    now = datetime.now(UTC).timestamp()

    report = json.loads(gzip.decompress(body))
    report["counts"][0]["n"] += 500
    tampered = schema.encode(report)
    status, err = post(office.url, tampered, sign(cred, body, now))
    assert status == 401 and "altered" in err["error"]

    status, err = post(office.url, body, sign(Credential.generate(settings.school_id), body, now))
    assert status == 401 and "is not enrolled" in err["error"]

    big = gzip.compress(os.urandom(600 * 1024))
    status, err = post(office.url, big, sign(cred, big, now))
    assert status == 413 and "too large" in err["error"]
    assert [st.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in DETAIL] == before

    captured = sign(cred, body, now)
    assert post(office.url, body, captured)[1]["status"] == "stored"
    stored = [st.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in DETAIL]
    assert stored[0] == before[0] + 1
    status, err = post(office.url, body, captured)  # the same request, replayed
    assert status == 409 and "replayed" in err["error"]
    assert [st.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in DETAIL] == stored
    st.close()

