"""Property: over random event logs written by the real EventLog, every figure of the built
report has at least k distinct devices behind it, rows never overlap, and where nothing
was suppressed the report's totals equal the appliance's own."""

from __future__ import annotations

import sqlite3
import tempfile
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterd.policy.decision import Action, Decision, Query, Reason, RuleSource
from filterd.state.events import EventLog
from filterd.sync.kanon import ALL_GROUPS, FEWER_THAN_K
from filterd.sync.report import build

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2026, 11, 24)
START = datetime(2026, 11, 24, tzinfo=TZ)
GROUPS = ("mam_non", "tieu_hoc", "thcs", "thpt")
CATS = ("adult", "games", "gambling", "")
ACTIONS = (Action.ALLOW, Action.BLOCK, Action.REWRITE)

event = st.tuples(
    st.integers(0, 86399),                     # second of the local day
    st.integers(0, 14),                        # device
    st.sampled_from(GROUPS),
    st.sampled_from(CATS),
    st.sampled_from(ACTIONS),
    st.booleans(),                             # a bypass attempt
)


def _write(path: Path, events) -> None:
    log = EventLog(path)
    clock = [0.0]
    with mock.patch("filterd.state.events.time.time", lambda: clock[0]):
        for sec, dev, group, cat, action, bypass in events:
            at = START + timedelta(seconds=sec)
            clock[0] = at.timestamp()
            if bypass:
                action, reason, cat = Action.BLOCK, Reason.BYPASS, "bypass"
            else:
                reason = Reason.CATEGORY if cat else Reason.DEFAULT
            d = Decision(action=action, reason=reason, name=f"x.{cat or 'none'}.example",
                         group=group, at=at.astimezone(UTC), rule="r",
                         source=RuleSource("list", "ut1", version="v1"), category=cat or None)
            q = Query(d.name, f"10.0.{dev // 200}.{dev % 200 + 1}", at.astimezone(UTC),
                      client_mac=f"02:00:00:00:00:{dev:02x}" if dev % 3 else None,
                      path="bypass" if bypass else "dns")
            log.record(d, q)
            if sec % 7 == 0:
                log.flush()
        log.flush()


def _cell(sec, group, cat, action, bypass):
    if bypass:
        action, cat = Action.BLOCK, "bypass"
    return (group, cat or "none", str(action), (START + timedelta(seconds=sec)).hour)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event, max_size=120), k=st.sampled_from([3, 5]))
def test_every_figure_has_k_devices_behind_it(events, k):
    truth_devs: dict[tuple, set[int]] = defaultdict(set)
    truth_n: dict[tuple, int] = defaultdict(int)
    group_devs: dict[str, set[int]] = defaultdict(set)
    for sec, dev, group, cat, action, bypass in events:
        key = _cell(sec, group, cat, action, bypass)
        truth_devs[key].add(dev)
        truth_n[key] += 1
        group_devs[group].add(dev)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "filterd.db"
        _write(db, events)
        conn = sqlite3.connect(db)
        report, rolled = build(conn, school_id="s", day=DAY, tz=TZ, secret=b"s" * 32, k=k,
                               now=datetime(2026, 11, 25, tzinfo=UTC))
        conn.close()

    covered: set[tuple] = set()
    for row, cell in zip(report["counts"], rolled.published, strict=True):
        assert (row["group"], row["category"], row["action"], row["hour"], row["n"]) == \
            (cell.group, cell.category, cell.action, cell.hour, cell.n)
        behind = set().union(*(truth_devs[m] for m in cell.members))
        assert len(behind) >= k, (row, behind)
        assert row["n"] == sum(truth_n[m] for m in cell.members)
        assert not covered & cell.members, "two rows cover the same queries"
        covered |= cell.members
        for g, c, a, h in cell.members:   # a row only ever widens, never relabels
            assert row["group"] in (g, ALL_GROUPS) and row["action"] == a
            assert row["category"] in (c, "other") and row["hour"] in (h, None)
    assert covered | rolled.suppressed == set(truth_n)
    assert not covered & rolled.suppressed
    if not rolled.suppressed:
        assert sum(r["n"] for r in report["counts"]) == len(events)
        for action in ("allow", "block", "rewrite"):
            assert sum(r["n"] for r in report["counts"] if r["action"] == action) == \
                sum(n for key, n in truth_n.items() if key[2] == action)

    for group, value in report["devices"].items():
        devs = set().union(*group_devs.values()) if group == ALL_GROUPS else group_devs[group]
        assert value == (len(devs) if len(devs) >= k else FEWER_THAN_K)
    for b in report["bypass"].values():
        assert b["devices"] >= k
