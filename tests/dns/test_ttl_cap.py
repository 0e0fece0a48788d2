"""TTL capping, asked with dig of filterd's DNS server on a clock the test moves.

An allowed answer whose verdict a time rule changes (a teacher's override that ends, a
schedule boundary of one of the name's categories for the client's group) gets a TTL no
longer than the seconds until then, whatever the upstream's TTL (300 s here); at the
boundary it reaches 0, and after it the other verdict is served.
"""

from __future__ import annotations

import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dnshelpers import ServerThread, Unbound

from filterd.lists.index import MemoryIndex
from filterd.policy import builtin
from filterd.policy.catalog import load_catalog
from filterd.policy.engine import Engine
from filterd.policy.loader import load_policy
from filterd.policy.overrides import Override, OverrideSet

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = """\
version: 1
default_group: hs
schedules:
  class:
    label_vi: Giờ học
    label_en: Class hours
    windows:
      - days: mon-sun
        times: ["07:00-11:30"]
groups:
  hs:
    label_vi: Học sinh
    label_en: Students
    block:
      always: [social_networks]
      during:
        class: [games]
    block_mode: nxdomain
"""
ZONE = ('local-data: "game.test. 300 IN A 192.0.2.77"\n'
        '  local-data: "social.test. 300 IN A 192.0.2.78"\n'
        '  local-data: "plain.test. 300 IN A 192.0.2.79"')
# 2026-12-02 is a Wednesday; the class-hours window opens at 07:00 Hà Nội time.
OPENS = datetime(2026, 12, 2, 7, 0, tzinfo=HCM).timestamp()
CLOSES = datetime(2026, 12, 2, 11, 30, tzinfo=HCM).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound"), extra="  " + ZONE).start()
    yield u
    u.stop()


def engine(tmp: Path, overrides=()) -> Engine:
    d = tmp / "policies"
    d.mkdir(exist_ok=True)
    (d / "policy.yaml").write_text(textwrap.dedent(POLICY), encoding="utf-8")
    catalog = load_catalog(REPO / "blocklists" / "categories.yaml")
    index = MemoryIndex.from_entries({"game.test": {"games"}, "social.test": {"social_networks"}},
                                     version="t")
    return Engine(load_policy(d, catalog), catalog, timezone=HCM, index=index,
                  overrides=OverrideSet(overrides), bypass=builtin.bypass_table(),
                  safe_search=builtin.safe_search_table(), youtube=builtin.youtube_table())


def dig(server, name: str, source: str) -> tuple[str, list[tuple[int, str]]]:
    """(status, [(ttl, address)]) from dig; each call from its own source address, so no
    decision or answer remembered for another call is reused."""
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(server.address[1]), "-b", source,
                          "+tries=1", "+time=3", name], capture_output=True, text=True,
                         timeout=20).stdout
    status = out.split("status: ", 1)[1].split(",", 1)[0]
    section = out.split(";; ANSWER SECTION:", 1)
    rows = []
    if len(section) == 2:
        for line in section[1].strip().split("\n\n", 1)[0].splitlines():
            parts = line.split()
            rows.append((int(parts[1]), parts[4]))
    return status, rows


def test_ttl_reaches_zero_at_the_schedule_boundary(tmp_path, unbound):
    clock = Clock(OPENS - 42.5)
    with ServerThread(engine(tmp_path), [unbound.address], wall_clock=clock) as server:
        assert dig(server, "game.test", "127.0.0.11") == ("NOERROR", [(42, "192.0.2.77")])
        assert dig(server, "plain.test", "127.0.0.11") == ("NOERROR", [(300, "192.0.2.79")])
        # a category the group blocks always: no time rule changes it, TTL untouched
        assert dig(server, "social.test", "127.0.0.11")[0] == "NXDOMAIN"
        clock.t = OPENS - 9.2   # the upstream answer is cached now: still capped
        assert dig(server, "game.test", "127.0.0.12") == ("NOERROR", [(9, "192.0.2.77")])
        clock.t = OPENS - 0.4
        assert dig(server, "game.test", "127.0.0.13") == ("NOERROR", [(0, "192.0.2.77")])
        clock.t = OPENS
        assert dig(server, "game.test", "127.0.0.14")[0] == "NXDOMAIN"
        # the block ends at 11:30: its negative answer lives no longer than that
        clock.t = CLOSES - 3.5
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(server.address[1]), "-b",
                              "127.0.0.15", "+tries=1", "+time=3", "game.test"],
                             capture_output=True, text=True, timeout=20).stdout
        assert "NXDOMAIN" in out and "\t3\tIN\tSOA" in out
        clock.t = CLOSES
        assert dig(server, "game.test", "127.0.0.16") == ("NOERROR", [(300, "192.0.2.77")])


def test_ttl_never_outlives_an_override(tmp_path, unbound):
    start = OPENS + 3600   # in class hours: games blocked, social always blocked
    ends = datetime.fromtimestamp(start + 100, UTC)
    o = Override("ov-1", "hs", "social.test", ends, "co.lan", "Bài giảng",
                 datetime.fromtimestamp(start, UTC))
    clock = Clock(start)
    with ServerThread(engine(tmp_path, [o]), [unbound.address], wall_clock=clock) as server:
        status, rows = dig(server, "social.test", "127.0.0.21")
        assert status == "NOERROR" and rows == [(100, "192.0.2.78")]
        clock.t = start + 99.6
        assert dig(server, "social.test", "127.0.0.22") == ("NOERROR", [(0, "192.0.2.78")])
        clock.t = (ends + timedelta(seconds=0)).timestamp()
        assert dig(server, "social.test", "127.0.0.23")[0] == "NXDOMAIN"
