import sqlite3
import time
from datetime import UTC, datetime

import pytest

from filterd.policy.decision import Action, Decision, Query, Reason, RuleSource
from filterd.state.db import open_db
from filterd.state.db import open_db as _open
from filterd.state.eventquery import search_events
from filterd.state.events import EventLog, hour_of


def decision(action=Action.BLOCK, reason=Reason.CATEGORY, category="adult", name="x.test"):
    return Decision(action=action, reason=reason, name=name, group="thcs", at=datetime.now(UTC),
                    rule=name, source=RuleSource("list", "ut1-adult", version="2026-11-25"),
                    category=category)


def query(name="x.test", ip="10.0.0.5"):
    return Query(name, ip, datetime.now(UTC), client_mac="aa:bb:cc:dd:ee:ff")


def test_blocked_stored_allowed_only_counted(tmp_path):
    log = EventLog(tmp_path / "f.db", flush_interval=0.05).start()
    log.record(decision(), query())
    for _ in range(5):
        log.record(decision(Action.ALLOW, Reason.DEFAULT, None, "ok.test"), query("ok.test"))
    log.record(decision(Action.REWRITE, Reason.SAFE_SEARCH, None, "www.google.com"),
               query("www.google.com"))
    log.record(decision(Action.BLOCK, Reason.BYPASS, None, "use-application-dns.net"),
               query("use-application-dns.net"))
    log.flush()
    log.close()
    rows = recent(tmp_path / "f.db")
    assert {r["name"] for r in rows} == {"x.test", "www.google.com", "use-application-dns.net"}
    row = next(r for r in rows if r["name"] == "x.test")
    assert row["client_mac"] == "aa:bb:cc:dd:ee:ff" and row["list_version"] == "2026-11-25"
    assert row["category"] == "adult" and row["path"] == "dns" and row["qtype"] == "A"
    db = open_db(tmp_path / "f.db")
    counts = {(r[0], r[1]): r[2] for r in db.execute(
        "SELECT action, category, n FROM counts").fetchall()}
    assert counts[("allow", "")] == 5 and counts[("block", "adult")] == 1


def test_store_allowed_setting(tmp_path):
    log = EventLog(tmp_path / "f.db", store_allowed=True)
    log.record(decision(Action.ALLOW, Reason.DEFAULT, None, "ok.test"), query("ok.test"))
    log.flush()
    assert [r["name"] for r in recent(tmp_path / "f.db")] == ["ok.test"]


def test_counts_accumulate_across_batches(tmp_path):
    log = EventLog(tmp_path / "f.db")
    for _ in range(3):
        log.record(decision(Action.ALLOW, Reason.DEFAULT, None), query())
        log.flush()
    n = open_db(tmp_path / "f.db").execute("SELECT SUM(n) FROM counts").fetchone()[0]
    assert n == 3


def test_full_queue_drops_and_counts(tmp_path):
    log = EventLog(tmp_path / "f.db", queue_max=10)   # writer not started
    for _ in range(25):
        log.record(decision(), query())
    assert log.dropped == 15
    log.flush()
    assert len(recent(tmp_path / "f.db", limit=100)) == 10


def test_record_is_fast_and_never_blocks_on_a_locked_db(tmp_path):
    log = EventLog(tmp_path / "f.db", flush_interval=0.05).start()
    blocker = sqlite3.connect(tmp_path / "f.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    for _ in range(2000):
        log.record(decision(), query())
    time.sleep(0.2)
    # Every record() returned while the writer could not write a single row.
    assert log.written == 0 and log.dropped == 0
    blocker.rollback()
    blocker.close()
    log.flush()
    log.close()
    assert len(recent(tmp_path / "f.db", limit=5000)) == 2000


def test_purge_removes_old_events_and_counts(tmp_path):
    log = EventLog(tmp_path / "f.db")
    log.record(decision(), query())
    log.flush()
    db = open_db(tmp_path / "f.db")
    db.execute("UPDATE events SET ts = ts - 40 * 86400")
    db.execute("INSERT INTO counts VALUES (?, 'thcs', '', 'allow', 'dns', 3)",
               [hour_of(time.time() - 40 * 86400)])
    log.record(decision(name="new.test"), query("new.test"))
    log.flush()
    assert log.purge(30) == 1
    assert [r["name"] for r in recent(tmp_path / "f.db")] == ["new.test"]
    assert db.execute("SELECT COUNT(*) FROM counts WHERE n = 3").fetchone()[0] == 0


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError):
        EventLog(tmp_path / "f.db", flush_interval=0)
    with pytest.raises(ValueError):
        EventLog(tmp_path / "f.db", retention_days=0)


def test_failed_write_keeps_the_rows_for_the_next_batch(tmp_path):
    log = EventLog(tmp_path / "f.db")
    db = open_db(tmp_path / "f.db")
    db.execute("ALTER TABLE events RENAME TO events_away")
    log.record(decision(), query())
    with pytest.raises(sqlite3.OperationalError):
        log._write(db)
    db.execute("ALTER TABLE events_away RENAME TO events")
    log.flush()
    assert [r["name"] for r in recent(tmp_path / "f.db")] == ["x.test"]


def test_counts_reported_once_and_stored_once_across_a_failed_write(tmp_path):
    log = EventLog(tmp_path / "f.db")
    seen = []
    log.on_counts = lambda counts: seen.append(sum(counts.values()))   # the daemon's metrics
    db = open_db(tmp_path / "f.db")
    db.execute("ALTER TABLE counts RENAME TO counts_away")
    log.record(decision(), query())
    with pytest.raises(sqlite3.OperationalError):
        log._write(db)
    db.execute("ALTER TABLE counts_away RENAME TO counts")
    log.record(decision(), query())
    log._write(db)
    assert seen == [1, 1]
    assert db.execute("SELECT SUM(n) FROM counts").fetchone()[0] == 2


def test_writer_thread_runs_below_the_query_path(tmp_path):
    import os
    import threading

    from filterd.state.events import lower_priority

    seen = {}

    def probe():
        seen["how"] = lower_priority()
        seen["policy"] = os.sched_getscheduler(threading.get_native_id())

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert seen["how"] == "idle" and seen["policy"] == os.SCHED_IDLE
    # Only that thread: the caller (the query path) keeps its normal policy.
    assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER


def recent(path, limit=100):
    """The newest events, through the state package's read query (as the admin page reads)."""
    db = _open(path)
    try:
        return search_events(db, limit=limit)
    finally:
        db.conn.close()


def test_a_starved_writer_is_raised_until_it_catches_up(tmp_path, caplog):
    """SCHED_IDLE on a busy machine: events waiting with no batch written -> nice 5."""
    import logging
    import os
    import threading

    from filterd.state.events import lower_priority

    caplog.set_level(logging.INFO, logger="filterd.state.events")
    log = EventLog(tmp_path / "f.db", queue_max=100)
    ready, stop = threading.Event(), threading.Event()
    tid = {}

    def idle_thread():
        tid["id"] = threading.get_native_id()
        tid["prio"] = lower_priority()
        ready.set()
        stop.wait(10)
    t = threading.Thread(target=idle_thread)
    t.start()
    try:
        ready.wait(5)
        if tid["prio"] != "idle":
            pytest.skip("SCHED_IDLE refused here")
        log._tid, log.priority = tid["id"], "idle"
        log.record(decision(), query())
        assert not log.watch(now=log.progress + 0.1)     # fresh: left alone
        assert log.watch(now=log.progress + 5.0)         # starved: raised
        assert "event writer behind" in caplog.records[-1].getMessage()
        assert os.sched_getscheduler(tid["id"]) == os.SCHED_OTHER
        assert log.priority == "boosted" and not log.watch(now=log.progress + 10.0)
        log.priority = "idle"   # caught up; starved again soon after: counted, not logged
        lines = len(caplog.records)
        assert log.watch(now=log.progress + 20.0) and len(caplog.records) == lines
        assert log.boosts == 2
    finally:
        stop.set()
        t.join()


def test_write_failures_one_line_then_summaries(tmp_path, caplog, monkeypatch):
    import sqlite3 as sq

    from filterd.state import events as ev

    log = EventLog(tmp_path / "f.db")
    for _ in range(50):
        log._note_failure(sq.OperationalError("database or disk is full"))
    log._note_written()
    lines = [r.getMessage() for r in caplog.records if r.name == "filterd.state.events"]
    assert len(lines) == 2 and "disk full" in lines[0] and "written again" in lines[1]
    assert not any(r.exc_info for r in caplog.records)
    monkeypatch.setattr(ev, "FAULT_SUMMARY_EVERY", 0.0)
    log._note_failure(sq.OperationalError("database or disk is full"))
    log._note_failure(sq.OperationalError("database or disk is full"))
    assert "still not written" in caplog.records[-1].getMessage()


def test_count_devices_records_who_stands_behind_each_count(tmp_path):
    """The daily report needs, per hourly count, its distinct devices (k-anonymity)."""
    log = EventLog(tmp_path / "f.db")
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.2"):
        for _ in range(3):
            log.record(decision(Action.ALLOW, Reason.DEFAULT, None, "ok.test"),
                       Query("ok.test", ip, datetime.now(UTC)))
        log.flush()   # a device seen again in the same hour is stored once
    log.record(decision(), query())
    log.flush()
    db = open_db(tmp_path / "f.db")
    rows = sorted(db.execute("SELECT action, category, device FROM count_devices").fetchall())
    assert rows == [("allow", "", "10.0.0.1"), ("allow", "", "10.0.0.2"),
                    ("block", "adult", "aa:bb:cc:dd:ee:ff")]
    assert db.execute("SELECT SUM(n) FROM counts").fetchone()[0] == 10
    # kept only a few days: the report is built every morning
    log.purge(30, now=time.time() + 9 * 86400)
    assert db.execute("SELECT COUNT(*) FROM count_devices").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM counts").fetchone()[0] > 0


def test_a_clock_far_in_the_future_does_not_empty_the_event_log(tmp_path):
    """A Pi whose clock says 2036 at start-up: the purge keeps the events it has."""
    log = EventLog(tmp_path / "f.db")
    log.record(decision(), query())
    log.flush()
    assert log.purge(30, now=time.time() + 10 * 365 * 86400) == 0
    assert len(list(recent(tmp_path / "f.db"))) == 1
    # A real gap is still honoured: events older than retention before the newest go.
    db = open_db(tmp_path / "f.db")
    db.execute("UPDATE events SET ts = ts - 40 * 86400")
    log.record(decision(name="new.test"), query("new.test"))
    log.flush()
    assert log.purge(30) == 1


def test_the_purge_waits_a_day_after_the_wall_clock_jumps(tmp_path, caplog):
    log = EventLog(tmp_path / "f.db")
    wall, mono = time.time(), time.monotonic()
    assert log._purge_allowed(wall, mono)                         # no jump
    assert not log._purge_allowed(wall + 86400 * 3650, mono + 1)  # +10 years: skipped
    assert "purge waits a day" in caplog.records[-1].getMessage()
    assert log._purge_allowed(wall + 86400 * 3650 + 86400, mono + 86401)   # a day on
