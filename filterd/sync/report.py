"""The daily report: what one school's appliance tells the education office about one day.

Built from the `events`, `counts` and `count_devices` tables (docs/dev/CONTRACTS.md)
for one finished day in the school's time zone. It carries aggregates only, and every
figure has at least k distinct devices (daily pseudonyms) behind it (kanon.py):

- counts by group x category x action x local hour, rolled up (hour -> day,
  category -> other, group -> all) until k devices share a row, else left out;
- top blocked names per category, only names hit by >= k distinct devices;
- distinct devices per group, "fewer_than_k" below k (the count leaves,
  the pseudonyms do not);
- bypass attempts per group with >= k devices; list versions; appliance health.

Never: addresses, MACs, device or user names, URLs, search terms, pseudonyms.
docs/privacy.md lists every field; report.schema.json is the contract.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from filterd import __version__
from filterd.state import eventquery
from filterd.sync.kanon import (
    FEWER_THAN_K,
    K_DEFAULT,
    Rollup,
    bypass_figures,
    check_k,
    device_figures,
    rollup_counts,
    top_names,
)
from filterd.sync.pseudonym import DailyPseudonyms, device_identity

SCHEMA_VERSION = 2
SCHEMA_ID = f"https://filterd.example/schema/daily-report/{SCHEMA_VERSION}"
NO_CATEGORY = "none"
NO_GROUP = "unknown"
OTHER = "other"
_TOKEN = re.compile(r"^[a-z0-9_-]{1,40}$")
_VERSION = re.compile(r"^[A-Za-z0-9._:+-]{1,64}$")


def _token(value: str | None, empty: str) -> str:
    """Group and category ids as the schema allows them; anything odd becomes `other`, so
    a strange id can neither break the upload nor carry free text out."""
    if not value:
        return empty
    return value if _TOKEN.match(value) else OTHER


@dataclass(frozen=True, slots=True)
class Health:
    """Appliance health when the report is built, read from the daemon's own files:
    uptime from `<data_dir>/filterd.pid` (written at start), counters from the metrics
    snapshots the workers write to `<data_dir>/metrics/*.json`. Unknown stays None."""

    uptime_s: int | None = None
    events_dropped: int | None = None
    upstream_failures: int | None = None

    @classmethod
    def read(cls, data_dir: Path, now: datetime) -> Health:
        data_dir = Path(data_dir)
        uptime = None
        try:
            pidf = data_dir / "filterd.pid"
            pid = int(pidf.read_text().strip())
            if Path(f"/proc/{pid}").exists():  # a stale pid file is not uptime
                uptime = max(0, int(now.timestamp() - pidf.stat().st_mtime))
        except (OSError, ValueError):
            pass
        snaps = []
        for path in sorted((data_dir / "metrics").glob("*.json")):
            try:
                snaps.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue

        def total(metric: str) -> int | None:
            if not snaps:
                return None
            n = 0.0
            for snap in snaps:
                for _labels, value in (snap.get(metric) or {}).get("values", []):
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        n += value
            return int(n)

        return cls(uptime, total("filterd_events_dropped_total"),
                   total("filterd_upstream_errors_total"))


@dataclass(frozen=True, slots=True)
class ListInfo:
    """The compiled list index in use when the report was built."""

    version: str | None = None
    updated_at: datetime | None = None
    # the office's signed feeds this appliance runs: kind -> version (filterd/sync/feedpull.py)
    feeds: tuple[tuple[str, int], ...] = ()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the local day, in UTC (handles 23/25-hour days)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_finished_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date() - timedelta(days=1)


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_ACTIONS = ("allow", "block", "rewrite", "enforce")


def _cells(conn: sqlite3.Connection, day: date, tz: ZoneInfo
           ) -> dict[tuple[str, str, str, int | None], tuple[int, set[str]]]:
    """Raw cells (group, category, action, local hour) -> (queries, devices behind them),
    from the event log's hourly counts and the devices behind them (filterd.state)."""
    start, end = day_bounds(day, tz)
    local: dict[datetime, int] = {}

    def key(hour: datetime, group: str, category: str, action: str):
        if hour not in local:
            local[hour] = hour.astimezone(tz).hour
        return (_token(group, NO_GROUP), _token(category, NO_CATEGORY), action, local[hour])

    n: dict[tuple, int] = defaultdict(int)
    devs: dict[tuple, set[str]] = defaultdict(set)
    for hour, group, category, action, total in eventquery.hour_counts(conn, start, end):
        if action in _ACTIONS:
            n[key(hour, group, category, action)] += int(total)
    for hour, group, category, action, device in eventquery.hour_devices(conn, start, end):
        k = key(hour, group, category, action)
        if k in n:
            devs[k].add(_identity(device))
    return {k: (v, devs.get(k, set())) for k, v in n.items() if v > 0}


def _identity(device: str) -> str:
    """count_devices holds the MAC when known, else the address (as EventLog.record saw
    them); the same form as device_identity() so both tables count a device once."""
    d = device.strip().lower()
    return "mac:" + d if _MAC.match(d) else "ip:" + d


def _event_rows(conn: sqlite3.Connection, day: date, tz: ZoneInfo):
    start, end = day_bounds(day, tz)
    return eventquery.events_between(conn, start, end)   # rows of eventquery.SYNC_FIELDS


def build_report(conn: sqlite3.Connection, *, school_id: str, day: date, tz: ZoneInfo,
                 secret: bytes, k: int = K_DEFAULT, health: Health | None = None,
                 lists: ListInfo | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The report for one finished local `day`, as a JSON-ready dict (see report.schema.json)."""
    return build(conn, school_id=school_id, day=day, tz=tz, secret=secret, k=k, health=health,
                 lists=lists, now=now)[0]


def build(conn: sqlite3.Connection, *, school_id: str, day: date, tz: ZoneInfo,
          secret: bytes, k: int = K_DEFAULT, health: Health | None = None,
          lists: ListInfo | None = None, now: datetime | None = None
          ) -> tuple[dict[str, Any], Rollup]:
    """The report and the roll-up behind its counts (what each row covers; for tests and
    `filterd sync --dry-run`, never sent)."""
    check_k(k)
    now = now or datetime.now(UTC)
    pseud = DailyPseudonyms(secret, day)
    devices: dict[str, set[str]] = defaultdict(set)
    bypass_n: dict[str, int] = defaultdict(int)
    bypass_dev: dict[str, set[str]] = defaultdict(set)
    blocked_hits: list[tuple[str, str, str]] = []
    versions: set[str] = set()
    for ip, mac, group, name, action, reason, category, path, list_version in \
            _event_rows(conn, day, tz):
        group = _token(group, NO_GROUP)
        ident = device_identity(ip, mac)
        p = pseud.of(ident) if ident else None
        if p:
            devices[group].add(p)
        if list_version and _VERSION.match(str(list_version)) and len(versions) < 100:
            versions.add(str(list_version))
        if path == "bypass" or reason == "bypass":
            bypass_n[group] += 1
            if p:
                bypass_dev[group].add(p)
        if action == "block" and name and p:
            blocked_hits.append((_token(category, NO_CATEGORY), name, p))
    top = top_names(blocked_hits, k)
    memo: dict[str, str] = {}

    def pseudo(ident: str) -> str:
        if ident not in memo:
            memo[ident] = pseud.of(ident)
        return memo[ident]

    cells = {key: (n, {pseudo(d) for d in devs})
             for key, (n, devs) in _cells(conn, day, tz).items()}
    for (group, _c, _a, _h), (_n, devs) in cells.items():
        devices[group] |= devs
    rolled = rollup_counts(cells, k, other=OTHER)
    from filterd.state.alerts import sent_summary

    start, end = day_bounds(day, tz)
    alerts_sent, alert_devices = sent_summary(conn, start.timestamp(), end.timestamp())
    lists = lists or ListInfo()
    health = health or Health()
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "school_id": school_id,
        "day": day.isoformat(),
        "timezone": tz.key,
        "generated_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "k_anonymity": k,
        "counts": [{"group": c.group, "category": c.category, "action": c.action,
                    "hour": c.hour, "n": c.n} for c in rolled.published],
        "top_blocked": {c: [{"name": t.name, "devices": t.devices, "hits": t.hits} for t in ts]
                        for c, ts in top.items()},
        "devices": device_figures(devices, k),
        "bypass": bypass_figures(bypass_n, bypass_dev, k),
        # How many safeguarding alerts reached the school's staff; nothing else of them
        # leaves the school, and not even the number with fewer than k devices behind it.
        "alerts_sent": alerts_sent if alert_devices >= k or alerts_sent == 0 else FEWER_THAN_K,
        "lists": {
            "current_version": (lists.version if lists.version
                                and _VERSION.match(lists.version) else None),
            "updated_at": (lists.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                           if lists.updated_at else None),
            "versions_seen": sorted(versions),
            "feeds": dict(lists.feeds),
        },
        "health": {
            "version": __version__,
            "uptime_s": health.uptime_s,
            "events_dropped": health.events_dropped,
            "upstream_failures": health.upstream_failures,
        },
    }, rolled


def first_data_day(conn: sqlite3.Connection, tz: ZoneInfo) -> date | None:
    """The earliest local day with any logged data (where a first sync starts)."""
    first = eventquery.first_data_time(conn)
    return first.astimezone(tz).date() if first else None
