"""The alert tables (module `alerts` in filterd.db) and every query on them.

alerts            one row per device per rule per window: attempts counted into it, when it
                  became due, whether staff handled it (who, when, the note). Health alerts
                  (kind 'health') are rows too, one per problem per window.
alert_messages    the durable outbox: one row per recipient and alert (or digest), its
                  delivery state, tries, next try and last error. A row is marked sent only
                  after the receiver accepted it; each has a stable key (Message-ID,
                  Idempotency-Key) so a resend after a crash is the same message.
alert_message_items  which alerts a digest message carries.
alert_recipients  the school's staff who receive alerts (managed on the admin page).
alert_meta        small key/value state (the last digest day).

Writes from the event writer happen inside its batch transaction (see record_hits), so
an event is logged if and only if it is counted into its alert.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from filterd.state.db import db_path, migrate, open_db

MODULE = "alerts"
NAMES_KEPT = 50          # distinct names remembered per alert (the alert shows a few)
STALE_CLAIM = 120.0      # a 'sending' row older than this was left by a dead deliverer

SAFEGUARDING, HEALTH = "safeguarding", "health"


def _v1(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE alerts (
        id INTEGER PRIMARY KEY, kind TEXT NOT NULL DEFAULT 'safeguarding',
        rule TEXT NOT NULL, device TEXT NOT NULL DEFAULT '', client_ip TEXT, client_mac TEXT,
        group_id TEXT, category TEXT, first_ts REAL NOT NULL, last_ts REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, names TEXT NOT NULL DEFAULT '[]',
        name_count INTEGER NOT NULL DEFAULT 0, threshold INTEGER NOT NULL DEFAULT 1,
        distinct_names INTEGER NOT NULL DEFAULT 0, window_end REAL NOT NULL,
        digest INTEGER NOT NULL DEFAULT 0, due_ts REAL,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'due', 'queued', 'expired')),
        detail TEXT NOT NULL DEFAULT '',
        handled_ts REAL, handled_by TEXT, handled_note TEXT)""")
    db.execute("CREATE INDEX alerts_open ON alerts (rule, device, window_end)")
    db.execute("CREATE INDEX alerts_state ON alerts (state, due_ts)")
    db.execute("CREATE INDEX alerts_first ON alerts (first_ts)")
    db.execute("""CREATE TABLE alert_messages (
        id INTEGER PRIMARY KEY, alert_id INTEGER REFERENCES alerts (id) ON DELETE CASCADE,
        is_digest INTEGER NOT NULL DEFAULT 0, recipient_id INTEGER, recipient TEXT NOT NULL,
        channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook')), address TEXT NOT NULL,
        created_ts REAL NOT NULL, next_try REAL NOT NULL, tries INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
        claimed_ts REAL, sent_ts REAL, last_error TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '')""")
    db.execute("CREATE INDEX alert_messages_due ON alert_messages (state, next_try)")
    db.execute("CREATE INDEX alert_messages_alert ON alert_messages (alert_id)")
    db.execute("""CREATE TABLE alert_message_items (
        message_id INTEGER NOT NULL REFERENCES alert_messages (id) ON DELETE CASCADE,
        alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        PRIMARY KEY (message_id, alert_id))""")
    db.execute("""CREATE TABLE alert_recipients (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
        email TEXT NOT NULL DEFAULT '', webhook TEXT NOT NULL DEFAULT '',
        groups TEXT NOT NULL DEFAULT '', quiet TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1, created_ts REAL NOT NULL)""")
    db.execute("CREATE TABLE alert_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


MIGRATIONS = [_v1]


def init_db(db: sqlite_utils.Database) -> None:
    migrate(db, MODULE, MIGRATIONS)


def open_alerts_db(data_dir: str | Path) -> sqlite_utils.Database:
    db = open_db(db_path(data_dir))
    init_db(db)
    return db


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


# -- the event writer's side ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Hit:
    """Events of one device matching one rule in one batch (already summed)."""

    rule: str
    device: str
    client_ip: str
    client_mac: str | None
    group_id: str
    category: str | None
    first_ts: float
    last_ts: float
    attempts: int
    names: tuple[str, ...]
    threshold: int
    distinct_names: bool
    window: float
    digest: bool


def record_hits(conn: sqlite3.Connection, hits: Iterable[Hit], hold: float) -> int:
    """Count `hits` into their open alerts (opening new ones); return alerts that became due.

    Runs inside the caller's transaction. An alert is open for its window from the first
    attempt; it becomes due `hold` seconds after it reaches its threshold, so attempts
    in quick succession go into one message.
    """
    became_due = 0
    for h in hits:
        row = conn.execute(
            "SELECT id, attempts, names, state FROM alerts WHERE kind = 'safeguarding'"
            " AND rule = ? AND device = ? AND window_end > ? AND state != 'expired'"
            " ORDER BY id DESC LIMIT 1", [h.rule, h.device, h.first_ts]).fetchone()
        if row is None:
            names = list(dict.fromkeys(h.names))[:NAMES_KEPT]
            attempts, state, aid = h.attempts, "pending", None
        else:
            aid, attempts, old, state = row
            names = json.loads(old)
            for n in h.names:
                if n not in names and len(names) < NAMES_KEPT:
                    names.append(n)
            attempts += h.attempts
        count = len(names) if h.distinct_names else attempts
        due_ts = None
        if state == "pending" and count >= h.threshold:
            state, due_ts = "due", h.last_ts + hold
            became_due += 1
        if aid is None:
            conn.execute(
                "INSERT INTO alerts (kind, rule, device, client_ip, client_mac, group_id,"
                " category, first_ts, last_ts, attempts, names, name_count, threshold,"
                " distinct_names, window_end, digest, due_ts, state)"
                " VALUES ('safeguarding', ?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [h.rule, h.device, h.client_ip, h.client_mac, h.group_id, h.category,
                 h.first_ts, h.last_ts, attempts, json.dumps(names), len(names), h.threshold,
                 int(h.distinct_names), h.first_ts + h.window, int(h.digest), due_ts, state])
        else:
            conn.execute(
                "UPDATE alerts SET last_ts = MAX(last_ts, ?), attempts = ?, names = ?,"
                " name_count = ?, state = ?, due_ts = COALESCE(due_ts, ?) WHERE id = ?",
                [h.last_ts, attempts, json.dumps(names), len(names), state, due_ts, aid])
    return became_due


# -- health alerts ----------------------------------------------------------------------------

def raise_health(db: sqlite_utils.Database, problem: str, detail: str, *, now: float,
                 window: float) -> int | None:
    """Open a health alert for `problem` unless one is open in its window; return its id."""
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")
        row = db.conn.execute(
            "SELECT id FROM alerts WHERE kind = 'health' AND rule = ? AND window_end > ?",
            [problem, now]).fetchone()
        if row is not None:
            db.conn.execute("UPDATE alerts SET attempts = attempts + 1, last_ts = ? WHERE id = ?",
                            [now, row[0]])
            return None
        cur = db.conn.execute(
            "INSERT INTO alerts (kind, rule, first_ts, last_ts, attempts, window_end, due_ts,"
            " state, detail) VALUES ('health', ?, ?, ?, 1, ?, ?, 'due', ?)",
            [problem, now, now, now + window, now, detail])
        return cur.lastrowid


# -- the deliverer's side ---------------------------------------------------------------------

def expire_pending(db: sqlite_utils.Database, now: float) -> int:
    """Windows that ended below their threshold: no alert (kept for counting, not shown)."""
    with db.conn:
        return db.conn.execute("UPDATE alerts SET state = 'expired' WHERE state = 'pending'"
                               " AND window_end <= ?", [now]).rowcount


def due_alerts(db: sqlite_utils.Database, now: float, *, digest: bool) -> list[dict[str, Any]]:
    return _rows(db.conn.execute(
        "SELECT * FROM alerts WHERE state = 'due' AND due_ts <= ? AND digest = ? ORDER BY id",
        [now, int(digest)]))


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to create: to whom, by which channel, when it may first be tried."""

    recipient_id: int | None
    recipient: str
    channel: str
    address: str
    not_before: float


def queue_messages(db: sqlite_utils.Database,
                   plan: Sequence[tuple[Outgoing, Sequence[int]]], alert_ids: Sequence[int],
                   *, now: float, digest: bool = False) -> int:
    """Create the messages of `plan` (per recipient channel: the alerts it carries) and mark
    `alert_ids` queued; return messages created.

    One transaction: a crash leaves the alerts either due with no message, or queued with
    every message, never half. Not a digest: one message per alert per channel.
    """
    n = 0
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")
        for o, ids in plan:
            targets: Sequence[int | None] = [None] if digest else list(ids)
            for aid in targets:
                cur = db.conn.execute(
                    "INSERT INTO alert_messages (alert_id, is_digest, recipient_id, recipient,"
                    " channel, address, created_ts, next_try) VALUES (?,?,?,?,?,?,?,?)",
                    [aid, int(digest), o.recipient_id, o.recipient, o.channel, o.address, now,
                     max(now, o.not_before)])
                n += 1
                if digest:
                    db.conn.executemany(
                        "INSERT INTO alert_message_items (message_id, alert_id) VALUES (?, ?)",
                        [(cur.lastrowid, a) for a in ids])
        db.conn.executemany("UPDATE alerts SET state = 'queued' WHERE id = ?",
                            [(a,) for a in alert_ids])
    return n


def release_stale_claims(db: sqlite_utils.Database, now: float) -> int:
    """Messages a dead deliverer was sending go back to the queue (sent again, same key)."""
    with db.conn:
        return db.conn.execute(
            "UPDATE alert_messages SET state = 'pending' WHERE state = 'sending'"
            " AND claimed_ts < ?", [now - STALE_CLAIM]).rowcount


def release_all_claims(db: sqlite_utils.Database) -> int:
    """At start-up nothing can be sending: this process is the only deliverer."""
    with db.conn:
        return db.conn.execute(
            "UPDATE alert_messages SET state = 'pending' WHERE state = 'sending'").rowcount


def claim_due_messages(db: sqlite_utils.Database, now: float, limit: int = 20
                       ) -> list[dict[str, Any]]:
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")
        rows = _rows(db.conn.execute(
            "SELECT * FROM alert_messages WHERE state = 'pending' AND next_try <= ?"
            " ORDER BY next_try, id LIMIT ?", [now, limit]))
        db.conn.executemany(
            "UPDATE alert_messages SET state = 'sending', claimed_ts = ? WHERE id = ?",
            [(now, r["id"]) for r in rows])
    return rows


def message_alerts(db: sqlite_utils.Database, message: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts one message carries (one, or a digest's)."""
    if message["is_digest"]:
        return _rows(db.conn.execute(
            "SELECT a.* FROM alerts a JOIN alert_message_items i ON i.alert_id = a.id"
            " WHERE i.message_id = ? ORDER BY a.first_ts", [message["id"]]))
    return _rows(db.conn.execute("SELECT * FROM alerts WHERE id = ?", [message["alert_id"]]))


def mark_sent(db: sqlite_utils.Database, message_id: int, subject: str, now: float) -> None:
    with db.conn:
        db.conn.execute(
            "UPDATE alert_messages SET state = 'sent', sent_ts = ?, subject = ?, tries = tries + 1,"
            " last_error = '' WHERE id = ?", [now, subject, message_id])


def mark_failed(db: sqlite_utils.Database, message_id: int, error: str, next_try: float | None,
                now: float) -> None:
    """A failed try: back in the queue for `next_try`, or given up (None)."""
    with db.conn:
        db.conn.execute(
            "UPDATE alert_messages SET state = ?, tries = tries + 1, last_error = ?,"
            " next_try = COALESCE(?, next_try), claimed_ts = NULL WHERE id = ?",
            ["pending" if next_try is not None else "failed", error[:500], next_try,
             message_id])


def get_meta(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.conn.execute("SELECT value FROM alert_meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_meta(db: sqlite_utils.Database, key: str, value: str) -> None:
    with db.conn:
        db.conn.execute("INSERT INTO alert_meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                        " DO UPDATE SET value = excluded.value", [key, value])


# -- recipients -------------------------------------------------------------------------------

RECIPIENT_FIELDS = ("name", "role", "email", "webhook", "groups", "quiet", "enabled")


def recipients(db: sqlite_utils.Database, *, enabled_only: bool = False
               ) -> list[dict[str, Any]]:
    sql = "SELECT * FROM alert_recipients" + (" WHERE enabled = 1" if enabled_only else "")
    return _rows(db.conn.execute(sql + " ORDER BY role, name, id"))


def recipient(db: sqlite_utils.Database, rid: int) -> dict[str, Any] | None:
    rows = _rows(db.conn.execute("SELECT * FROM alert_recipients WHERE id = ?", [rid]))
    return rows[0] if rows else None


def save_recipient(db: sqlite_utils.Database, values: dict[str, Any], rid: int | None = None
                   ) -> int:
    """Insert (rid None) or update a recipient from already validated values."""
    vals = [values[k] for k in RECIPIENT_FIELDS]
    with db.conn:
        if rid is None:
            cur = db.conn.execute(
                f"INSERT INTO alert_recipients ({', '.join(RECIPIENT_FIELDS)}, created_ts)"
                f" VALUES ({', '.join('?' * len(RECIPIENT_FIELDS))}, ?)", [*vals, time.time()])
            return int(cur.lastrowid)  # type: ignore[arg-type]
        db.conn.execute(
            f"UPDATE alert_recipients SET {', '.join(f'{k} = ?' for k in RECIPIENT_FIELDS)}"
            " WHERE id = ?", [*vals, rid])
        return rid


def delete_recipient(db: sqlite_utils.Database, rid: int) -> bool:
    with db.conn:
        return db.conn.execute("DELETE FROM alert_recipients WHERE id = ?", [rid]).rowcount > 0


# -- the admin page ---------------------------------------------------------------------------

def list_alerts(db: sqlite_utils.Database, *, kind: str | None = None, handled: bool | None = None,
                limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Alerts that fired (due or sent; not windows below their threshold), newest first."""
    where, args = ["state IN ('due', 'queued')"], []
    if kind:
        where.append("kind = ?")
        args.append(kind)
    if handled is not None:
        where.append("handled_ts IS NOT NULL" if handled else "handled_ts IS NULL")
    return _rows(db.conn.execute(
        f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY first_ts DESC, id DESC"
        " LIMIT ? OFFSET ?", [*args, limit, offset]))


def count_alerts(db: sqlite_utils.Database, *, kind: str | None = None,
                 handled: bool | None = None) -> int:
    where, args = ["state IN ('due', 'queued')"], []
    if kind:
        where.append("kind = ?")
        args.append(kind)
    if handled is not None:
        where.append("handled_ts IS NOT NULL" if handled else "handled_ts IS NULL")
    return db.conn.execute(f"SELECT COUNT(*) FROM alerts WHERE {' AND '.join(where)}",
                           args).fetchone()[0]


def get_alert(db: sqlite_utils.Database, alert_id: int) -> dict[str, Any] | None:
    rows = _rows(db.conn.execute("SELECT * FROM alerts WHERE id = ?", [alert_id]))
    return rows[0] if rows else None


def messages_for(db: sqlite_utils.Database, alert_ids: Sequence[int]
                 ) -> dict[int, list[dict[str, Any]]]:
    """Every message carrying each alert (its own, and digests), oldest first."""
    out: dict[int, list[dict[str, Any]]] = {a: [] for a in alert_ids}
    if not alert_ids:
        return out
    marks = ", ".join("?" * len(alert_ids))
    for r in _rows(db.conn.execute(
            f"SELECT m.*, COALESCE(m.alert_id, i.alert_id) AS for_alert FROM alert_messages m"
            f" LEFT JOIN alert_message_items i ON i.message_id = m.id"
            f" WHERE m.alert_id IN ({marks}) OR i.alert_id IN ({marks}) ORDER BY m.id",
            [*alert_ids, *alert_ids])):
        out.setdefault(r["for_alert"], []).append(r)
    return out


def mark_handled(db: sqlite_utils.Database, alert_id: int, by: str, note: str,
                 now: float | None = None) -> bool:
    with db.conn:
        return db.conn.execute(
            "UPDATE alerts SET handled_ts = ?, handled_by = ?, handled_note = ?"
            " WHERE id = ? AND state IN ('due', 'queued')",
            [now or time.time(), by, note, alert_id]).rowcount > 0


def sent_summary(conn: sqlite3.Connection, since: float, until: float) -> tuple[int, int]:
    """(safeguarding alerts that reached someone in [since, until), devices behind them).

    For the daily report, which carries the first only (and only with k devices behind
    it); a database without the alert tables has sent none.
    """
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                    " AND name = 'alert_messages'").fetchone() is None:
        return 0, 0
    row = conn.execute(
        "SELECT COUNT(DISTINCT a.id), COUNT(DISTINCT a.device) FROM alert_messages m"
        " LEFT JOIN alert_message_items i ON i.message_id = m.id"
        " JOIN alerts a ON a.id = COALESCE(m.alert_id, i.alert_id)"
        " WHERE m.state = 'sent' AND m.sent_ts >= ? AND m.sent_ts < ? AND a.kind = ?",
        [since, until, SAFEGUARDING]).fetchone()
    return int(row[0]), int(row[1])


def recent_messages(db: sqlite_utils.Database, limit: int = 20) -> list[dict[str, Any]]:
    return _rows(db.conn.execute("SELECT * FROM alert_messages ORDER BY id DESC LIMIT ?",
                                 [limit]))


def message_counts(db: sqlite_utils.Database) -> dict[str, int]:
    return dict(db.conn.execute("SELECT state, COUNT(*) FROM alert_messages GROUP BY state")
                .fetchall())


def purge(db: sqlite_utils.Database, before: float) -> int:
    """Forget alerts (and their messages) older than the event retention."""
    with db.conn:
        return db.conn.execute("DELETE FROM alerts WHERE first_ts < ?", [before]).rowcount
