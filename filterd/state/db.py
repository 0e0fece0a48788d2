"""SQLite database shared by the daemon, the admin page and the sync job.

One file (`<data_dir>/filterd.db`), WAL mode so the DNS event writer, the admin
page and the sync job can read and write at once. Each module owns its tables
and registers its own ordered migrations under its own name, so modules never
edit each other's schema. The shared tables (`events`, `counts`, `reviews`) are
created and queried only by modules of filterd.state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]

DB_NAME = "filterd.db"


def db_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / DB_NAME


def open_db(path: str | Path, *, timeout: float = 10.0) -> sqlite_utils.Database:
    """Open (creating if needed) a WAL-mode database with a busy timeout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False,
                           isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across crashes of the process
    db.execute("PRAGMA foreign_keys=ON")
    return db


def migrate(db: sqlite_utils.Database, module: str, migrations: Sequence[Migration]) -> int:
    """Apply `migrations[n:]` where n is how many `module` already applied; return n applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " module TEXT NOT NULL, version INTEGER NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (datetime('now')),"
        " PRIMARY KEY (module, version))"
    )
    row = db.execute("SELECT COALESCE(MAX(version), 0) FROM _migrations WHERE module = ?",
                     [module]).fetchone()
    done = row[0]
    applied = 0
    for version, step in enumerate(migrations[done:], start=done + 1):
        with db.conn:  # one transaction per step: a crash leaves no half-applied step
            db.conn.execute("BEGIN IMMEDIATE")
            # Another process (a second DNS worker, the admin page) may have applied this
            # step between our read above and taking the write lock: look again under it.
            if db.conn.execute("SELECT 1 FROM _migrations WHERE module = ? AND version = ?",
                               [module, version]).fetchone():
                continue
            step(db)
            db.conn.execute("INSERT INTO _migrations (module, version) VALUES (?, ?)",
                            [module, version])
        applied += 1
    return applied


def table_exists(db: sqlite_utils.Database | sqlite3.Connection, name: str) -> bool:
    conn = db.conn if isinstance(db, sqlite_utils.Database) else db
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                       [name]).fetchone()
    return row is not None
