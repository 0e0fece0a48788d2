"""The admin page's own tables in `<data_dir>/filterd.db` (module name `admin`).

users: accounts with argon2 hashes and, for teachers, the groups they teach.
login_failures: recent failed logins, for throttling and lockout.
audit: every change anyone made through the page (who, when, diff, reason).
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from filterd.state import sessions
from filterd.state.db import db_path, migrate, open_db, table_exists

MODULE = "admin"


def _v1(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE users ("
        " id INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
        " password_hash TEXT NOT NULL,"
        " role TEXT NOT NULL CHECK (role IN ('admin','teacher','viewer')),"
        " groups TEXT NOT NULL DEFAULT '',"  # comma-separated group ids (teachers)
        " disabled INTEGER NOT NULL DEFAULT 0,"
        " created_at REAL NOT NULL,"
        " last_login REAL)"
    )
    db.execute(
        "CREATE TABLE login_failures ("
        " id INTEGER PRIMARY KEY, ts REAL NOT NULL, username TEXT NOT NULL, remote TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX login_failures_ts ON login_failures (ts)")
    db.execute(
        "CREATE TABLE audit ("
        " id INTEGER PRIMARY KEY,"
        " ts REAL NOT NULL,"
        " actor TEXT NOT NULL,"
        " role TEXT NOT NULL,"
        " action TEXT NOT NULL,"
        " target TEXT NOT NULL DEFAULT '',"
        " diff TEXT NOT NULL DEFAULT '',"
        " reason TEXT NOT NULL DEFAULT '',"
        " outcome TEXT NOT NULL DEFAULT '')"
    )
    db.execute("CREATE INDEX audit_ts ON audit (ts)")


MIGRATIONS = (_v1,)


def open_admin_db(data_dir: str | Path) -> sqlite_utils.Database:
    """Open the shared database and bring the admin tables up to date."""
    db = open_db(db_path(data_dir))
    migrate(db, MODULE, MIGRATIONS)
    sessions.init(db)   # sign-ins are server-side records (filterd.state.sessions)
    return db

__all__ = ["MIGRATIONS", "MODULE", "open_admin_db", "table_exists"]
