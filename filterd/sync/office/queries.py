"""What the office pages show, as plain tables (the same tables become CSV).

Every query is portable SQL over the storage layer, so SQLite and PostgreSQL
answer identically (tests run both).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from filterd.sync.office.storage import Storage


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


def reporting_status(st: Storage, day: date) -> tuple[Table, Table]:
    """Schools whose report for `day` arrived, and those missing with the first missing day
    (the day after their last report, or their enrolment day if they never reported)."""
    got = {r[0]: r[1] for r in st.query(
        "SELECT school_id, received_at FROM reports WHERE day = ?", [day.isoformat()])}
    last = dict(st.query("SELECT school_id, MAX(day) FROM reports GROUP BY school_id"))
    reported = Table("Reported", ["School id", "Name", "District", "Province", "Received at"])
    missing = Table("Missing", ["School id", "Name", "District", "Province", "Missing since"])
    for s in st.schools():
        if s.id in got:
            reported.rows.append([s.id, s.name, s.district, s.province, got[s.id]])
        elif s.enrolled_at[:10] > day.isoformat():
            continue  # enrolled after that day: nothing was expected from it
        else:
            since = (date.fromisoformat(last[s.id]) + timedelta(days=1)).isoformat() \
                if last.get(s.id) else s.enrolled_at[:10]
            missing.rows.append([s.id, s.name, s.district, s.province, since])
    missing.rows.sort(key=lambda r: (r[4], r[3], r[2], r[0]))
    return reported, missing


def blocks(st: Storage, start: date, end: date, district: str | None = None) -> list[Table]:
    where = "c.action = 'block' AND c.day >= ? AND c.day <= ?"
    params: list[Any] = [start.isoformat(), end.isoformat()]
    if district:
        where += " AND s.district = ?"
        params.append(district)
    by_district = Table("Blocks per category and age group by district",
                        ["Province", "District", "Age group", "Category", "Blocked"])
    by_district.rows = [list(r) for r in st.query(
        "SELECT s.province, s.district, c.grp, c.category, SUM(c.n) FROM report_counts c"
        f" JOIN schools s ON s.id = c.school_id WHERE {where}"
        " GROUP BY s.province, s.district, c.grp, c.category"
        " ORDER BY s.province, s.district, c.grp, c.category", params)]
    by_day = Table("Blocks per day and category", ["Day", "Category", "Blocked"])
    by_day.rows = [list(r) for r in st.query(
        "SELECT c.day, c.category, SUM(c.n) FROM report_counts c"
        f" JOIN schools s ON s.id = c.school_id WHERE {where}"
        " GROUP BY c.day, c.category ORDER BY c.day, c.category", params)]
    return [by_district, by_day]


def top(st: Storage, start: date, end: date) -> list[Table]:
    cats = Table("Top categories", ["Category", "Blocked"])
    cats.rows = [list(r) for r in st.query(
        "SELECT category, SUM(n) AS total FROM report_counts WHERE action = 'block'"
        " AND day >= ? AND day <= ? GROUP BY category ORDER BY total DESC, category",
        [start.isoformat(), end.isoformat()])]
    names = Table("Blocked names seen by at least k devices",
                  ["Category", "Name", "Hits", "Schools reporting it"])
    names.rows = [list(r) for r in st.query(
        "SELECT category, name, SUM(hits) AS h, COUNT(DISTINCT school_id) FROM report_top"
        " WHERE day >= ? AND day <= ? GROUP BY category, name ORDER BY h DESC, name LIMIT 100",
        [start.isoformat(), end.isoformat()])]
    return [cats, names]


def bypass(st: Storage, start: date, end: date) -> list[Table]:
    t = Table("Bypass attempts per day and district",
              ["Day", "Province", "District", "Attempts", "Devices"])
    t.rows = [list(r) for r in st.query(
        "SELECT b.day, s.province, s.district, SUM(b.attempts), SUM(b.devices)"
        " FROM report_bypass b JOIN schools s ON s.id = b.school_id"
        " WHERE b.day >= ? AND b.day <= ? GROUP BY b.day, s.province, s.district"
        " ORDER BY b.day, s.province, s.district", [start.isoformat(), end.isoformat()])]
    return [t]


def freshness(st: Storage, now: datetime) -> list[Table]:
    t = Table("List freshness", ["School id", "Name", "District", "Last report", "List version",
                                 "List updated", "List age (days)", "Appliance version",
                                 "Events dropped", "Upstream failures"])
    latest = {r[0]: r[1:] for r in st.query(
        "SELECT r.school_id, r.day, r.list_version, r.list_updated_at, r.app_version,"
        " r.events_dropped, r.upstream_failures FROM reports r JOIN"
        " (SELECT school_id, MAX(day) AS d FROM reports GROUP BY school_id) m"
        " ON r.school_id = m.school_id AND r.day = m.d")}
    for s in st.schools():
        day, version, updated, app, dropped, failures = latest.get(s.id, (None,) * 6)
        age = None
        if updated:
            upd = datetime.strptime(updated, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            age = max(0, (now - upd).days)
        t.rows.append([s.id, s.name, s.district, day or "never", version, updated, age, app,
                       dropped, failures])
    t.rows.sort(key=lambda r: (-(r[6] if r[6] is not None else 10**6), r[0]))
    return [t]


def yearly_period(year: int) -> tuple[date, date]:
    """The reporting year ends 30 November, so the report is complete before 15 December."""
    return date(year - 1, 12, 1), date(year, 11, 30)


def yearly(st: Storage, start: date, end: date) -> list[Table]:
    p = [start.isoformat(), end.isoformat()]
    days = dict(st.query("SELECT school_id, COUNT(*) FROM reports"
                         " WHERE day >= ? AND day <= ? GROUP BY school_id", p))
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for sid, action, n in st.query(
            "SELECT school_id, action, SUM(n) FROM report_counts WHERE day >= ? AND day <= ?"
            " GROUP BY school_id, action", p):
        totals[sid][action] = int(n)
    byp = {sid: int(n) for sid, n in st.query(
        "SELECT school_id, SUM(attempts) FROM report_bypass WHERE day >= ? AND day <= ?"
        " GROUP BY school_id", p)}
    cat_rows = st.query("SELECT school_id, category, SUM(n) FROM report_counts"
                        " WHERE action = 'block' AND day >= ? AND day <= ?"
                        " GROUP BY school_id, category", p)
    categories = sorted({r[1] for r in cat_rows})
    per_cat: dict[str, dict[str, int]] = defaultdict(dict)
    for sid, cat, n in cat_rows:
        per_cat[sid][cat] = int(n)
    base = ["Days reported", "Queries", "Blocked", "Bypass attempts"]
    schools = Table("Totals per school", ["Province", "District", "School id", "Name", *base,
                                          *categories])
    districts: dict[tuple[str, str], list[int]] = {}
    for s in st.schools():
        t = totals.get(s.id, {})
        nums = [int(days.get(s.id, 0)), sum(t.values()), t.get("block", 0), byp.get(s.id, 0),
                *(per_cat[s.id].get(c, 0) for c in categories)]
        schools.rows.append([s.province, s.district, s.id, s.name, *nums])
        acc = districts.setdefault((s.province, s.district), [0] * (len(nums) + 1))
        acc[0] += 1
        for i, v in enumerate(nums, start=1):
            acc[i] += v
    dist = Table("Totals per district", ["Province", "District", "Number of schools", *base,
                                         *categories])
    dist.rows = [[prov, d, *nums] for (prov, d), nums in sorted(districts.items())]
    return [dist, schools]


def blocks_per_day(st: Storage, start: date, end: date, district: str | None = None
                   ) -> list[tuple[str, int]]:
    """Blocked queries per day over [start, end], every day present (0 when none)."""
    where, params = "c.action = 'block' AND c.day >= ? AND c.day <= ?", [start.isoformat(),
                                                                         end.isoformat()]
    if district:
        where += " AND s.district = ?"
        params.append(district)
    got = {d: int(n) for d, n in st.query(
        "SELECT c.day, SUM(c.n) FROM report_counts c JOIN schools s ON s.id = c.school_id"
        f" WHERE {where} GROUP BY c.day", params)}
    out, d = [], start
    while d <= end:
        out.append((d.isoformat(), got.get(d.isoformat(), 0)))
        d += timedelta(days=1)
    return out


def blocks_by_category(st: Storage, start: date, end: date, district: str | None = None
                       ) -> dict[str, int]:
    where, params = "c.action = 'block' AND c.day >= ? AND c.day <= ?", [start.isoformat(),
                                                                         end.isoformat()]
    if district:
        where += " AND s.district = ?"
        params.append(district)
    return {c: int(n) for c, n in st.query(
        "SELECT c.category, SUM(c.n) FROM report_counts c JOIN schools s ON s.id = c.school_id"
        f" WHERE {where} GROUP BY c.category", params)}


def school_detail(st: Storage, school_id: str, start: date, end: date) -> dict[str, Any]:
    """One school: reporting days, health and versions of its latest report, device coverage
    (devices per tier on its latest day, as k-anonymously reported), feed versions."""
    p = [school_id, start.isoformat(), end.isoformat()]
    reports = st.query(
        "SELECT day, received_at, app_version, list_version, list_updated_at, uptime_s,"
        " events_dropped, upstream_failures FROM reports WHERE school_id = ? AND day >= ?"
        " AND day <= ? ORDER BY day DESC", p)
    latest = reports[0] if reports else None
    devices = st.query("SELECT grp, devices, below_k FROM report_devices WHERE school_id = ?"
                       " AND day = ? ORDER BY grp", [school_id, latest[0]]) if latest else []
    try:
        feeds = st.query("SELECT kind, version, pulled_at FROM feed_pulls WHERE school_id = ?"
                         " ORDER BY kind", [school_id])
    except Exception:   # the feeds part (issue 16) not installed on this office
        feeds = []
    return {"reports": reports, "latest": latest, "devices": devices, "feeds": feeds,
            "days": len(reports), "period_days": (end - start).days + 1}
