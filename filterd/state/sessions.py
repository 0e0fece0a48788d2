"""Admin page sign-ins as server-side records (table `sessions`, module name `sessions`).

The browser's cookie carries a random token; the table keeps only its SHA-256, the
account, and when it expires. A session is valid only while its row exists, so signing
out, a password change, a role or group change and disabling the account end it at
once, in every browser, whatever copy of the cookie someone kept.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import sqlite_utils

from filterd.state.db import migrate

MODULE = "sessions"
TOUCH_EVERY = 60.0   # last_seen is written at most once a minute per session


def _v1(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL,"
               " created_at REAL NOT NULL, last_seen REAL NOT NULL, expires_at REAL NOT NULL,"
               " remote TEXT NOT NULL DEFAULT '')")
    db.execute("CREATE INDEX sessions_user ON sessions (user_id)")
    db.execute("CREATE INDEX sessions_expires ON sessions (expires_at)")


MIGRATIONS = (_v1,)


def init(db: sqlite_utils.Database) -> None:
    migrate(db, MODULE, MIGRATIONS)


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(db: sqlite_utils.Database, user_id: int, *, lifetime: float, remote: str = "",
           now: float | None = None) -> str:
    """A new session for `user_id`; returns the token for the cookie."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    with db.conn:
        db.conn.execute("DELETE FROM sessions WHERE expires_at < ?", [now])
        db.conn.execute("INSERT INTO sessions (id, user_id, created_at, last_seen, expires_at,"
                        " remote) VALUES (?, ?, ?, ?, ?, ?)",
                        [_key(token), int(user_id), now, now, now + lifetime, remote[:64]])
    return token


def lookup(db: sqlite_utils.Database, token: str | None, *,
           now: float | None = None) -> int | None:
    """The account a live session belongs to, or None (unknown, ended or expired)."""
    if not token or not isinstance(token, str):
        return None
    now = time.time() if now is None else now
    row = db.execute("SELECT user_id, expires_at, last_seen FROM sessions WHERE id = ?",
                     [_key(token)]).fetchone()
    if row is None:
        return None
    user_id, expires_at, last_seen = row
    if expires_at <= now:
        end(db, token)
        return None
    if now - last_seen >= TOUCH_EVERY:
        with db.conn:
            db.conn.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", [now, _key(token)])
    return int(user_id)


def end(db: sqlite_utils.Database, token: str | None) -> None:
    if token:
        with db.conn:
            db.conn.execute("DELETE FROM sessions WHERE id = ?", [_key(token)])


def end_user(db: sqlite_utils.Database, user_id: int, *, keep: str | None = None) -> int:
    """End every session of `user_id` (but `keep`, the caller's own); return how many."""
    with db.conn:
        if keep:
            cur = db.conn.execute("DELETE FROM sessions WHERE user_id = ? AND id != ?",
                                  [int(user_id), _key(keep)])
        else:
            cur = db.conn.execute("DELETE FROM sessions WHERE user_id = ?", [int(user_id)])
    return cur.rowcount


def count(db: sqlite_utils.Database, user_id: int, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return int(db.execute("SELECT COUNT(*) FROM sessions WHERE user_id = ? AND expires_at > ?",
                          [int(user_id), now]).fetchone()[0])
