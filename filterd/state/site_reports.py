"""The `site_reports` table: reports of harmful sites made on the school's report form.

Anyone on the school network (a student, a teacher, a parent on the guest Wi-Fi)
can report a site. What is kept is the site, what is wrong with it (catalog
category ids), an optional note, and when. The reporter is not recorded: only a
keyed hash of the device's address, for the per-device rate limit, and it
never leaves the appliance. What is forwarded to the office is the site, the
categories, the note and the day, under a random id.

Status as the school's IT staff see it:

    new        waiting for the IT staff
    blocked    blocked for the school (the site answers with the block page)
    dismissed  looked at, nothing to do
and, once forwarded, the office's outcome: `office_status` pending / accepted /
rejected (accepted: the site is in the office's deny feed for every school).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from filterd.errors import FilterdError
from filterd.lists.normalize import normalize_name
from filterd.state.db import db_path, migrate, open_db

MODULE = "site_reports"
MAX_NOTE = 500
MAX_CATEGORIES = 8
STATUSES = ("new", "blocked", "dismissed")
OFFICE_STATUSES = ("pending", "accepted", "rejected")


class SiteReportError(FilterdError):
    """A report was refused: bad input (the message says which field) or the rate limit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class ReportRateLimited(SiteReportError):
    pass


def _create(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE site_reports ("
        " id TEXT PRIMARY KEY, created_at REAL NOT NULL, site TEXT NOT NULL,"
        " url TEXT, categories TEXT NOT NULL,"
        " note TEXT NOT NULL DEFAULT '' CHECK (length(note) <= 500),"
        " status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'blocked', 'dismissed')),"
        " decided_by TEXT, decided_at REAL,"
        " forward INTEGER NOT NULL DEFAULT 0, forwarded_at REAL, office_status TEXT"
        "   CHECK (office_status IS NULL OR office_status IN ('pending', 'accepted', 'rejected')),"
        " office_decided_at TEXT)")
    db.execute("CREATE INDEX site_reports_status ON site_reports (status, created_at)")


MIGRATIONS = [_create]


def site_of(text: str) -> tuple[str, str | None]:
    """(host name, url or None) from what a person typed: a name, or an http(s) address."""
    from urllib.parse import urlsplit

    raw = (text or "").strip()
    if not raw:
        raise SiteReportError("the site's address is empty", field="site")
    if len(raw) > 2000:
        raise SiteReportError("the address is too long", field="site")
    url = None
    host = raw
    if "://" in raw or "/" in raw:
        parts = urlsplit(raw if "://" in raw else "http://" + raw)
        if parts.scheme not in ("http", "https"):
            raise SiteReportError("only web addresses (http or https) can be reported",
                                  field="site")
        host = parts.hostname or ""
        url = raw if "://" in raw else "http://" + raw
    name = normalize_name(host)
    if name is None or "." not in name:
        raise SiteReportError("this is not a web site's address", field="site")
    return name, url


def clean_note(text: str) -> str:
    kept = "".join(c for c in (text or "") if c in "\n\t" or (c.isprintable()
                                                             and c not in "\u2028\u2029"))
    return kept.strip()[:MAX_NOTE]


@dataclass(frozen=True, slots=True)
class SiteReport:
    id: str
    created_at: float
    site: str
    url: str | None
    categories: tuple[str, ...]
    note: str
    status: str
    decided_by: str | None
    decided_at: float | None
    forward: bool
    forwarded_at: float | None
    office_status: str | None
    office_decided_at: str | None

    @classmethod
    def from_row(cls, row: dict) -> SiteReport:
        cats = tuple(c for c in (row["categories"] or "").split(",") if c)
        return cls(row["id"], row["created_at"], row["site"], row["url"], cats, row["note"],
                   row["status"], row["decided_by"], row["decided_at"], bool(row["forward"]),
                   row["forwarded_at"],
                   row["office_status"], row["office_decided_at"])


class SiteReportStore:
    """The school's report queue (block page host writes, admin page and sync read)."""

    def __init__(self, data_dir: str | Path, *, per_device: int = 5,
                 window: float = 3600.0) -> None:
        self.data_dir = Path(data_dir)
        self.db = open_db(db_path(data_dir))
        migrate(self.db, MODULE, MIGRATIONS)
        self.per_device = per_device
        self.window = window
        self._recent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        # a per-process key: the rate limit needs to tell devices apart, never who they are
        self._salt = secrets.token_bytes(16)

    def add(self, site: str, categories: list[str], note: str, *, client_ip: str,
            known_categories: set[str], now: float | None = None) -> SiteReport:
        now = time.time() if now is None else now
        name, url = site_of(site)
        cats = [c for c in dict.fromkeys(categories) if c]
        if not cats:
            raise SiteReportError("choose what is wrong with the site", field="categories")
        if len(cats) > MAX_CATEGORIES or any(c not in known_categories for c in cats):
            raise SiteReportError("unknown category", field="categories")
        note = clean_note(note)
        device = hmac.new(self._salt, client_ip.encode(), hashlib.sha256).hexdigest()[:16]
        rid = uuid.uuid4().hex
        with self._lock:
            self._admit(device, now)
            self.db.execute(
                "INSERT INTO site_reports (id, created_at, site, url, categories, note, status)"
                " VALUES (?, ?, ?, ?, ?, ?, 'new')", [rid, now, name, url, ",".join(cats), note])
        return self.get(rid)  # type: ignore[return-value]

    def _admit(self, device: str, now: float) -> None:
        q = self._recent.setdefault(device, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.per_device:
            raise ReportRateLimited(f"more than {self.per_device} reports per hour "
                                    "from this device")
        q.append(now)
        if len(self._recent) > 10000:  # bounded under a flood of spoofed addresses
            self._recent = {k: v for k, v in self._recent.items()
                            if v and v[-1] > now - self.window}

    def get(self, rid: str) -> SiteReport | None:
        rows = list(self.db.query("SELECT * FROM site_reports WHERE id = ?", [rid]))
        return SiteReport.from_row(rows[0]) if rows else None

    def all(self, *, limit: int = 500) -> list[SiteReport]:
        return [SiteReport.from_row(r) for r in self.db.query(
            "SELECT * FROM site_reports ORDER BY created_at DESC LIMIT ?", [limit])]

    def count_new(self) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM site_reports WHERE status = 'new'").fetchone()[0]

    def decide(self, rid: str, status: str, *, by: str, now: float | None = None) -> SiteReport:
        if status not in STATUSES or status == "new":
            raise SiteReportError(f"unknown decision {status!r}")
        n = self.db.execute("UPDATE site_reports SET status = ?, decided_by = ?, decided_at = ?"
                            " WHERE id = ?", [status, by, time.time() if now is None else now,
                                              rid]).rowcount
        if n == 0:
            raise SiteReportError("no such report")
        return self.get(rid)  # type: ignore[return-value]

    def blocked_sites(self) -> list[tuple[str, str]]:
        """(site, report id) the school blocked after a report: the engine's school-wide deny."""
        return [(r["site"], r["id"]) for r in self.db.query(
            "SELECT site, id FROM site_reports WHERE status = 'blocked' ORDER BY created_at")]

    def request_forward(self, rid: str) -> None:
        """The IT staff chose to send this report to the office (sent at the next sync)."""
        if self.db.execute("UPDATE site_reports SET forward = 1 WHERE id = ?",
                           [rid]).rowcount == 0:
            raise SiteReportError("no such report")

    def to_forward(self, *, automatic: bool) -> list[SiteReport]:
        """Reports waiting to go to the office: those the staff chose, or, when the school
        forwards automatically, every report not dismissed."""
        extra = " OR status != 'dismissed'" if automatic else ""
        return [SiteReport.from_row(r) for r in self.db.query(
            "SELECT * FROM site_reports WHERE forwarded_at IS NULL AND (forward = 1"
            f"{extra}) ORDER BY created_at")]

    def mark_forwarded(self, ids: list[str], *, now: float | None = None) -> None:
        at = time.time() if now is None else now
        with self.db.conn:
            for rid in ids:
                self.db.execute("UPDATE site_reports SET forwarded_at = ?,"
                                " office_status = COALESCE(office_status, 'pending')"
                                " WHERE id = ?", [at, rid])

    def set_office_outcome(self, rid: str, status: str, decided_at: str | None) -> None:
        if status not in OFFICE_STATUSES:
            return
        self.db.execute("UPDATE site_reports SET office_status = ?, office_decided_at = ?"
                        " WHERE id = ? AND forwarded_at IS NOT NULL", [status, decided_at, rid])

    def forwarded_ids(self) -> list[str]:
        return [r["id"] for r in self.db.query(
            "SELECT id FROM site_reports WHERE forwarded_at IS NOT NULL"
            " AND office_status = 'pending'")]

    def close(self) -> None:
        self.db.conn.close()
