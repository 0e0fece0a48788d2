"""The outbox and the whole path, end to end on loopback against a running office."""

import gzip
import json
from datetime import date, datetime, timedelta

import pytest

from filterd.sync.outbox import Outbox, run_sync
from filterd.sync.uploader import Uploader

from .conftest import TZ, appliance_total, free_port, generate_days

D0 = date(2026, 11, 18)


def morning(day: date) -> datetime:
    """02:00 the next morning, when the daily timer runs for `day`."""
    n = day + timedelta(days=1)
    return datetime(n.year, n.month, n.day, 2, tzinfo=TZ)


def no_sleep(_):
    pass


def report_hourly(conn, days, k=5) -> dict[tuple, int]:
    """What the k-anonymous reports of `days` hold, by day, group, category, action and local
    hour (24: the rest of the day, rows rolled up to reach k devices)."""
    from filterd.sync.report import build_report

    out: dict[tuple, int] = {}
    for d in days:
        r = build_report(conn, school_id="s", day=d, tz=TZ, secret=b"x" * 32, k=k)
        for c in r["counts"]:
            key = (d.isoformat(), c["group"], c["category"], c["action"],
                   24 if c["hour"] is None else c["hour"])
            out[key] = out.get(key, 0) + c["n"]
    return out


def office_hourly(storage) -> dict[tuple, int]:
    out = {}
    for day, group, category, action, hours in storage.query(
            "SELECT day, grp, category, action, hours FROM report_counts"):
        for h, n in enumerate(int(x) for x in hours.split(",")):
            if n:
                out[(day, group, category, action, h)] = n
    return out


def test_several_days_arrive_and_office_totals_equal_the_appliance(office, appliance):
    settings, conn = appliance
    days = [D0 + timedelta(days=i) for i in range(4)]
    generate_days(conn, days)
    cred = office.enrol(settings.school_id)
    result = run_sync(settings, Uploader(office.url, cred), now=morning(days[-1]), sleep=no_sleep)
    assert result.built == [d.isoformat() for d in days]
    assert result.delivered == [d.isoformat() for d in days]
    assert result.pending == [] and result.error is None
    for d in days:
        assert office.total(settings.school_id, d) == appliance_total(conn, d) > 0
    # blocks per category: each category as the appliance counted it, less what k-anonymity
    # rolled up into `other` (rows with fewer than k devices behind them)
    app = dict(conn.execute(
        "SELECT category, SUM(n) FROM counts WHERE action='block' AND hour >= ? AND hour < ?"
        " GROUP BY category", ["2026-11-17T17", "2026-11-21T17"]).fetchall())
    off = {k: int(v) for k, v in office.storage.query(
        "SELECT category, SUM(n) FROM report_counts WHERE action='block' GROUP BY category")}
    assert sum(off.values()) == sum(app.values())
    assert all(0 < off[c] <= n for c, n in app.items())
    assert off["other"] == sum(app.values()) - sum(off[c] for c in app)
    # and every single row the reports carried: day x group x category x action x hour
    assert office_hourly(office.storage) == report_hourly(conn, days)
    state = json.loads(settings.state_file.read_text())
    assert state["last_success_day"] == days[-1].isoformat()
    # the next run has nothing to do
    again = run_sync(settings, Uploader(office.url, cred), now=morning(days[-1]), sleep=no_sleep)
    assert again.built == [] and again.delivered == []
    assert office.count("reports") == 4


def test_three_days_of_outage_then_every_day_arrives_exactly_once(office, appliance):
    settings, conn = appliance
    days = [D0 + timedelta(days=i) for i in range(5)]
    generate_days(conn, days)
    cred = office.enrol(settings.school_id)
    up = Uploader(office.url, cred)
    down = Uploader(f"http://127.0.0.1:{free_port()}", cred, timeout=5)
    sleeps = []

    assert run_sync(settings, up, now=morning(days[0]), sleep=no_sleep).delivered == ["2026-11-18"]
    for i in (1, 2, 3):  # the office is down for three daily runs
        r = run_sync(settings, down, now=morning(days[i]), sleep=sleeps.append)
        assert r.built == [days[i].isoformat()]
        assert "office unreachable" in r.error
        assert r.pending == [d.isoformat() for d in days[1:i + 1]]
    assert sleeps == [2, 8] * 3  # retried with backoff inside each run
    assert json.loads(settings.state_file.read_text())["failures"] == 3
    # the office is back: the fourth run delivers the missed days and the new one, once each
    r = run_sync(settings, up, now=morning(days[4]), sleep=no_sleep)
    assert r.delivered == [d.isoformat() for d in days[1:]]
    assert r.pending == [] and r.error is None
    rows = office.storage.query("SELECT day, COUNT(*) FROM reports GROUP BY day ORDER BY day")
    assert [(d, int(n)) for d, n in rows] == [(d.isoformat(), 1) for d in days]
    for d in days:
        assert office.total(settings.school_id, d) == appliance_total(conn, d)


def test_lost_acknowledgement_does_not_double_count(office, appliance):
    settings, conn = appliance
    generate_days(conn, [D0])
    cred = office.enrol(settings.school_id)
    box = Outbox(settings)
    box.build_missing(morning(D0))
    body = box.path_for(D0).read_bytes()
    Uploader(office.url, cred).send(body)  # delivered, but the appliance never saw the ack
    r = run_sync(settings, Uploader(office.url, cred), now=morning(D0), sleep=no_sleep)
    assert r.duplicates == ["2026-11-18"] and r.pending == []
    assert office.total(settings.school_id, D0) == appliance_total(conn, D0)


def test_backoff_is_respected_between_runs_unless_forced(appliance):
    settings, conn = appliance
    generate_days(conn, [D0], per_day=5)
    from filterd.sync.signing import Credential

    down = Uploader(f"http://127.0.0.1:{free_port()}", Credential.issue(settings.school_id),
                    timeout=5)
    now = morning(D0)
    assert run_sync(settings, down, now=now, retries=(), sleep=no_sleep).error
    r = run_sync(settings, down, now=now + timedelta(minutes=1), retries=(), sleep=no_sleep)
    assert r.skipped_backoff and r.pending == ["2026-11-18"]
    r = run_sync(settings, down, now=now + timedelta(minutes=1), retries=(),
                 respect_backoff=False, sleep=no_sleep)
    assert not r.skipped_backoff and "unreachable" in r.error
    st = json.loads(settings.state_file.read_text())
    assert st["failures"] == 2 and st["next_attempt_at"] > (now.timestamp() + 500)


def test_refused_report_stays_and_later_days_still_go(office, appliance):
    settings, conn = appliance
    generate_days(conn, [D0, D0 + timedelta(days=1)], per_day=20)
    cred = office.enrol(settings.school_id)
    box = Outbox(settings)
    box.build_missing(morning(D0 + timedelta(days=1)))
    bad = box.path_for(D0)
    bad.write_bytes(gzip.compress(b'{"not": "a report"}'))
    r = run_sync(settings, Uploader(office.url, cred), now=morning(D0 + timedelta(days=1)),
                 sleep=no_sleep)
    assert [d for d, _ in r.rejected] == ["2026-11-18"]
    assert r.delivered == ["2026-11-19"]
    assert r.pending == ["2026-11-18"] and bad.exists()


def test_crash_after_writing_the_report_builds_it_once(appliance):
    settings, conn = appliance
    generate_days(conn, [D0], per_day=5)
    box = Outbox(settings)
    box.build_missing(morning(D0))
    first = box.path_for(D0).read_bytes()
    settings.state_file.unlink()  # as if the process died before saving its progress
    assert box.build_missing(morning(D0)) == []
    assert box.path_for(D0).read_bytes() == first


def test_no_office_configured_keeps_reports(appliance):
    settings, conn = appliance
    generate_days(conn, [D0], per_day=5)
    r = run_sync(settings, None, now=morning(D0))
    assert r.built == r.pending == ["2026-11-18"]


def test_first_run_without_data_builds_yesterday_only(appliance):
    settings, _ = appliance
    r = run_sync(settings, None, now=morning(D0))
    assert r.built == ["2026-11-18"]


@pytest.mark.parametrize("gap", [200])
def test_catch_up_is_bounded(appliance, gap):
    settings, conn = appliance
    generate_days(conn, [D0 - timedelta(days=gap)], per_day=2)
    assert len(Outbox(settings).days_to_build(morning(D0))) == 90
