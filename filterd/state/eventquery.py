"""Read queries on the event log (`events`, `counts`) for the admin page, sync and the CLI.

The callers pass an open database (`filterd.state.db.open_db`, or a plain sqlite3
connection) and get rows back; they never write SQL of their own. Every value
reaches SQL as a bound parameter; a missing table (nothing logged yet) reads as
no rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from filterd.state.hours import hour_key, parse_hour

__all__ = ["EVENT_FIELDS", "EventFilter", "blocks_by", "blocks_per_hour", "bypass_count",
           "count_events", "events_between", "first_data_time", "has_table", "hour_counts",
           "search_events", "top_blocked_names"]

Conn = sqlite_utils.Database | sqlite3.Connection

# Columns a reader may ask for (search_events refuses anything else: no SQL from outside).
EVENT_FIELDS = ("id", "ts", "client_ip", "client_mac", "group_id", "name", "qtype", "action",
                "reason", "category", "rule", "source", "list_version", "path", "url",
                "search_term")
_BY = {"category", "group_id"}


def _conn(db: Conn) -> sqlite3.Connection:
    return db.conn if isinstance(db, sqlite_utils.Database) else db


def has_table(db: Conn, name: str) -> bool:
    row = _conn(db).execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                            [name]).fetchone()
    return row is not None


def _like(text: str) -> str:
    """A LIKE pattern matching `text` literally (its % and _ escaped)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events: every field left None matches all.

    groups: only these groups (a teacher's); an empty tuple matches nothing.
    client: an address or MAC (admins only; the caller decides who may filter by it).
    name: a substring of the name, matched literally.
    """

    since: float | None = None
    until: float | None = None
    group: str | None = None
    category: str | None = None
    action: str | None = None
    name: str | None = None
    client: str | None = None
    groups: tuple[str, ...] | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.since is not None:
            clauses.append("ts >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("ts < ?")
            args.append(self.until)
        for value, col in ((self.group, "group_id"), (self.category, "category"),
                           (self.action, "action")):
            if value:
                clauses.append(f"{col} = ?")
                args.append(value)
        if self.name:
            clauses.append("name LIKE ? ESCAPE '\\'")
            args.append(_like(self.name.lower()))
        if self.client:
            clauses.append("(client_ip = ? OR client_mac = ?)")
            args += [self.client, self.client.lower()]
        if self.groups is not None:
            marks = ",".join("?" * len(self.groups)) or "NULL"
            clauses.append(f"group_id IN ({marks})")
            args += list(self.groups)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def count_events(db: Conn, f: EventFilter = EventFilter()) -> int:
    if not has_table(db, "events"):
        return 0
    where, args = f.where()
    return int(_conn(db).execute(f"SELECT COUNT(*) FROM events {where}", args).fetchone()[0])


def search_events(db: Conn, f: EventFilter = EventFilter(), *,
                  columns: Sequence[str] = EVENT_FIELDS, limit: int = 100,
                  offset: int = 0) -> list[dict[str, Any]]:
    """Matching events, newest first."""
    bad = [c for c in columns if c not in EVENT_FIELDS]
    if bad or not columns:
        raise ValueError(f"unknown event columns: {bad or 'none given'}")
    if not has_table(db, "events"):
        return []
    where, args = f.where()
    cur = _conn(db).execute(f"SELECT {', '.join(columns)} FROM events {where}"
                            " ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?",
                            [*args, int(limit), int(offset)])
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def blocks_by(db: Conn, column: str, since: datetime) -> list[tuple[str, int]]:
    """Blocked queries per category or group_id from the hour of `since` on."""
    if column not in _BY:
        raise ValueError(f"blocks_by: {column!r} is not one of {sorted(_BY)}")
    if not has_table(db, "counts"):
        return []
    rows = _conn(db).execute(
        f"SELECT {column}, SUM(n) FROM counts WHERE action = 'block' AND hour >= ?"
        f" GROUP BY {column}", [hour_key(since)]).fetchall()
    return [(r[0] or "", int(r[1] or 0)) for r in rows]


def blocks_per_hour(db: Conn, since: datetime) -> dict[datetime, int]:
    """Blocked queries per UTC hour (start of the hour, aware) from the hour of `since` on."""
    if not has_table(db, "counts"):
        return {}
    rows = _conn(db).execute(
        "SELECT hour, SUM(n) FROM counts WHERE action = 'block' AND hour >= ? GROUP BY hour",
        [hour_key(since)]).fetchall()
    return {parse_hour(h): int(n or 0) for h, n in rows}


def top_blocked_names(db: Conn, since: float, limit: int = 10) -> list[tuple[str, int]]:
    if not has_table(db, "events"):
        return []
    return [(r[0], int(r[1])) for r in _conn(db).execute(
        "SELECT name, COUNT(*) AS n FROM events WHERE action = 'block' AND ts >= ?"
        " GROUP BY name ORDER BY n DESC, name LIMIT ?", [since, int(limit)]).fetchall()]


def bypass_count(db: Conn, since: float) -> int:
    """Events on the bypass path or with the bypass reason since unix time `since`."""
    if not has_table(db, "events"):
        return 0
    return int(_conn(db).execute(
        "SELECT COUNT(*) FROM events WHERE ts >= ? AND (path = 'bypass' OR reason = 'bypass')",
        [since]).fetchone()[0])


def hour_counts(db: Conn, start: datetime, end: datetime
                ) -> Iterator[tuple[datetime, str, str, str, int]]:
    """(hour start UTC, group, category, action, n) for the hours in [start, end)."""
    if not has_table(db, "counts"):
        return iter(())
    rows = _conn(db).execute(
        "SELECT hour, group_id, category, action, SUM(n) FROM counts"
        " WHERE hour >= ? AND hour < ? GROUP BY hour, group_id, category, action",
        [hour_key(start), hour_key(end)])
    return ((parse_hour(h), g, c, a, int(n)) for h, g, c, a, n in rows)


def hour_devices(db: Conn, start: datetime, end: datetime
                 ) -> Iterator[tuple[datetime, str, str, str, str]]:
    """(hour start UTC, group, category, action, device) for the hours in [start, end): who
    stands behind each hourly count (the daily report's k-anonymity, docs/privacy.md)."""
    if not has_table(db, "count_devices"):
        return iter(())
    rows = _conn(db).execute(
        "SELECT hour, group_id, category, action, device FROM count_devices"
        " WHERE hour >= ? AND hour < ?", [hour_key(start), hour_key(end)])
    return ((parse_hour(h), g, c, a, d) for h, g, c, a, d in rows)


SYNC_FIELDS = ("client_ip", "client_mac", "group_id", "name", "action", "reason", "category",
               "path", "list_version")


def events_between(db: Conn, start: datetime, end: datetime) -> Iterator[tuple]:
    """Rows of SYNC_FIELDS for events in [start, end), streamed (a day may be large)."""
    if not has_table(db, "events"):
        return iter(())
    return iter(_conn(db).execute(
        f"SELECT {', '.join(SYNC_FIELDS)} FROM events WHERE ts >= ? AND ts < ?",
        [start.timestamp(), end.timestamp()]))


def first_data_time(db: Conn) -> datetime | None:
    """When the earliest logged event or count is from (UTC), or None."""
    found: list[datetime] = []
    if has_table(db, "events"):
        ts = _conn(db).execute("SELECT MIN(ts) FROM events").fetchone()[0]
        if ts is not None:
            found.append(datetime.fromtimestamp(ts, UTC))
    if has_table(db, "counts"):
        h = _conn(db).execute("SELECT MIN(hour) FROM counts").fetchone()[0]
        if h:
            found.append(parse_hour(h))
    return min(found) if found else None
