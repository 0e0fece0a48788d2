"""The `reviews` table: "please look at this block again" requests from the block page.

The block page adds to it (ReviewStore); the admin page lists and decides them with
the functions below. Messages are capped at 500 characters and stored
as plain text (every page that shows them escapes them). A per-client limit stops
one device from flooding the queue.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from filterd.errors import FilterdError
from filterd.state.db import db_path, migrate, open_db

MODULE = "reviews"
MAX_MESSAGE = 500
MAX_FIELD = 2000
STATUSES = ("open", "approved", "declined")


class ReviewError(FilterdError):
    """A review request was refused (bad input or rate limit)."""


class RateLimited(ReviewError):
    pass


def _create_reviews(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE reviews ("
        " id INTEGER PRIMARY KEY, created_at REAL NOT NULL, name TEXT NOT NULL, url TEXT,"
        " group_id TEXT, category TEXT, reason TEXT,"
        " message TEXT NOT NULL DEFAULT '' CHECK (length(message) <= 500),"
        " client_ip TEXT, status TEXT NOT NULL DEFAULT 'open'"
        "   CHECK (status IN ('open', 'approved', 'declined')),"
        " decided_by TEXT, decided_at REAL, note TEXT)"
    )
    db.execute("CREATE INDEX reviews_status ON reviews (status, created_at)")


MIGRATIONS = [_create_reviews]


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    name: str
    url: str | None
    group_id: str
    category: str | None
    reason: str
    message: str
    client_ip: str

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 253:
            raise ReviewError("bad name")
        if len(self.message) > MAX_MESSAGE:
            raise ReviewError(f"message longer than {MAX_MESSAGE} characters")
        if self.url is not None and len(self.url) > MAX_FIELD:
            raise ReviewError("url too long")


def clean_message(text: str) -> str:
    """Drop control characters (keep newlines), trim, cap at MAX_MESSAGE."""
    kept = "".join(c for c in text if c in "\n\t" or (c.isprintable() and c not in "\u2028\u2029"))
    return kept.strip()[:MAX_MESSAGE]


class ReviewStore:
    def __init__(
        self, data_dir: str | Path, *, per_client: int = 5, window: float = 3600.0
    ) -> None:
        self.db = open_db(db_path(data_dir))
        migrate(self.db, MODULE, MIGRATIONS)
        self.per_client = per_client
        self.window = window
        self._recent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, req: ReviewRequest, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            self._admit(req.client_ip, now)
            cur = self.db.execute(
                "INSERT INTO reviews (created_at, name, url, group_id, category, reason, message,"
                " client_ip, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                [
                    now,
                    req.name,
                    req.url,
                    req.group_id,
                    req.category,
                    req.reason,
                    req.message,
                    req.client_ip,
                ],
            )
            return int(cur.lastrowid)

    def _admit(self, client_ip: str, now: float) -> None:
        q = self._recent.setdefault(client_ip, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.per_client:
            raise RateLimited(f"more than {self.per_client} reviews per {self.window:.0f}s")
        q.append(now)
        if len(self._recent) > 10000:  # bounded memory under a flood of spoofed clients
            self._recent = {
                k: v for k, v in self._recent.items() if v and v[-1] > now - self.window
            }

    def open_reviews(self) -> list[dict]:
        return list(
            self.db.query("SELECT * FROM reviews WHERE status = 'open' ORDER BY created_at")
        )

    def close(self) -> None:
        self.db.conn.close()


# -- the admin page's side -----------------------------------------------------------


def _has_reviews(db: sqlite_utils.Database) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='reviews'"
                      ).fetchone() is not None


def _where(status: str, groups: tuple[str, ...] | None) -> tuple[str, list[Any]]:
    if status not in STATUSES:
        raise ReviewError(f"unknown review status {status!r}")
    where, args = "WHERE status = ?", [status]
    if groups is not None:   # a teacher: only the groups they teach
        marks = ",".join("?" * len(groups)) or "NULL"
        where += f" AND group_id IN ({marks})"
        args += list(groups)
    return where, args


def get_review(db: sqlite_utils.Database, review_id: int) -> dict | None:
    if not _has_reviews(db):
        return None
    rows = list(db.query("SELECT * FROM reviews WHERE id = ?", [int(review_id)]))
    return rows[0] if rows else None


def count_reviews(db: sqlite_utils.Database, status: str = "open",
                  groups: tuple[str, ...] | None = None) -> int:
    if not _has_reviews(db):
        return 0
    where, args = _where(status, groups)
    return int(db.execute(f"SELECT COUNT(*) FROM reviews {where}", args).fetchone()[0])


def list_reviews(db: sqlite_utils.Database, status: str = "open",
                 groups: tuple[str, ...] | None = None, *, limit: int = 50,
                 offset: int = 0) -> list[dict]:
    """Reviews with `status`, newest first; groups: only these (None: all)."""
    if not _has_reviews(db):
        return []
    where, args = _where(status, groups)
    return list(db.query(f"SELECT * FROM reviews {where} ORDER BY created_at DESC, id DESC"
                         " LIMIT ? OFFSET ?", [*args, int(limit), int(offset)]))


def decide_review(db: sqlite_utils.Database, review_id: int, status: str, *, by: str,
                  note: str = "", now: float | None = None) -> None:
    if status not in ("approved", "declined"):
        raise ReviewError(f"a review is decided as approved or declined, not {status!r}")
    with db.conn:
        db.conn.execute(
            "UPDATE reviews SET status = ?, decided_by = ?, decided_at = ?, note = ? WHERE id = ?",
            [status, by, time.time() if now is None else now, note, int(review_id)])
