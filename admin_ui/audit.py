"""The audit log: every change made through the admin page, with a diff and the typed reason."""

from __future__ import annotations

import csv
import difflib
import io
import json
import time
from collections.abc import Iterable
from typing import Any

import sqlite_utils

AUDIT_COLUMNS = ("id", "ts", "actor", "role", "action", "target", "diff", "reason", "outcome")


def text_diff(before: str, after: str, name: str = "") -> str:
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/{name}" if name else "before", tofile=f"b/{name}" if name else "after"))


def value_diff(before: Any, after: Any) -> str:
    """A diff of two JSON-able values (settings, accounts, overrides)."""
    def dump(v: Any) -> str:
        if v is None:
            return ""
        return json.dumps(v, ensure_ascii=False, indent=1, sort_keys=True) + "\n"

    return text_diff(dump(before), dump(after))


def record(db: sqlite_utils.Database, *, actor: str, role: str, action: str, target: str = "",
           diff: str = "", reason: str = "", outcome: str = "ok") -> int:
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO audit (ts, actor, role, action, target, diff, reason, outcome)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [time.time(), actor, role, action, target, diff, reason, outcome])
    return cur.lastrowid  # type: ignore[return-value]


def search(db: sqlite_utils.Database, *, actor: str = "", action: str = "",
           since: float | None = None, until: float | None = None, limit: int = 50,
           offset: int = 0) -> list[dict]:
    where, args = _where(actor, action, since, until)
    return list(db.query(f"SELECT * FROM audit {where} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?",
                         [*args, limit, offset]))


def count(db: sqlite_utils.Database, *, actor: str = "", action: str = "",
          since: float | None = None, until: float | None = None) -> int:
    where, args = _where(actor, action, since, until)
    return db.execute(f"SELECT COUNT(*) FROM audit {where}", args).fetchone()[0]


def _where(actor: str, action: str, since: float | None, until: float | None) -> tuple[str, list]:
    clauses: list[str] = []
    args: list[Any] = []
    if actor:
        clauses.append("actor = ?")
        args.append(actor)
    if action:
        clauses.append("action = ?")
        args.append(action)
    if since is not None:
        clauses.append("ts >= ?")
        args.append(since)
    if until is not None:
        clauses.append("ts < ?")
        args.append(until)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def to_csv(rows: Iterable[dict], columns: Iterable[str]) -> str:
    """CSV text; cells that a spreadsheet would run as a formula are defused with a quote."""
    buf = io.StringIO()
    cols = list(columns)
    writer = csv.writer(buf)
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
