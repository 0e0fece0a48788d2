"""The daily report: what one school's appliance tells the education office about one day.

Built from the `events` and `counts` tables (docs/dev/CONTRACTS.md) for one
finished day in the school's time zone. It carries aggregates only:

- counts by group x category x action x local hour (from `counts`);
- top blocked names per category, only names hit by >= k distinct devices;
- distinct devices per group, counted with daily pseudonyms (the count leaves,
  the pseudonyms do not);
- bypass attempts per group; list versions; appliance health.

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
from filterd.sync.kanon import K_DEFAULT, check_k, top_names
from filterd.sync.pseudonym import DailyPseudonyms, device_identity

SCHEMA_VERSION = 1
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


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of the local day, in UTC (handles 23/25-hour days)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_finished_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date() - timedelta(days=1)


def _hour_counts(conn: sqlite3.Connection, day: date, tz: ZoneInfo) -> list[dict[str, Any]]:
    start, end = day_bounds(day, tz)
    acc: dict[tuple[str, str, str, int], int] = defaultdict(int)
    for utc_hour, group, category, action, n in eventquery.hour_counts(conn, start, end):
        local_hour = utc_hour.astimezone(tz).hour
        acc[(_token(group, NO_GROUP), _token(category, NO_CATEGORY), action, local_hour)] += int(n)
    return [{"group": g, "category": c, "action": a, "hour": h, "n": n}
            for (g, c, a, h), n in sorted(acc.items()) if n > 0]


def _event_rows(conn: sqlite3.Connection, day: date, tz: ZoneInfo):
    start, end = day_bounds(day, tz)
    return eventquery.events_between(conn, start, end)   # rows of eventquery.SYNC_FIELDS


def build_report(conn: sqlite3.Connection, *, school_id: str, day: date, tz: ZoneInfo,
                 secret: bytes, k: int = K_DEFAULT, health: Health | None = None,
                 lists: ListInfo | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The report for one finished local `day`, as a JSON-ready dict (see report.schema.json)."""
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
        "counts": _hour_counts(conn, day, tz),
        "top_blocked": {c: [{"name": t.name, "devices": t.devices, "hits": t.hits} for t in ts]
                        for c, ts in top.items()},
        "devices": {g: len(s) for g, s in sorted(devices.items())},
        "bypass": {g: {"attempts": n, "devices": len(bypass_dev[g])}
                   for g, n in sorted(bypass_n.items())},
        "lists": {
            "current_version": (lists.version if lists.version
                                and _VERSION.match(lists.version) else None),
            "updated_at": (lists.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                           if lists.updated_at else None),
            "versions_seen": sorted(versions),
        },
        "health": {
            "version": __version__,
            "uptime_s": health.uptime_s,
            "events_dropped": health.events_dropped,
            "upstream_failures": health.upstream_failures,
        },
    }


def first_data_day(conn: sqlite3.Connection, tz: ZoneInfo) -> date | None:
    """The earliest local day with any logged data (where a first sync starts)."""
    first = eventquery.first_data_time(conn)
    return first.astimezone(tz).date() if first else None
