"""Office storage: one small layer, two backends (SQLite by default, PostgreSQL by URL).

The SQL is written once in the common subset both understand (TEXT/BIGINT
columns, `INSERT ... ON CONFLICT DO NOTHING`, `?` placeholders translated for
psycopg). Each thread keeps its own connection (waitress serves with a fixed
thread pool), so a request never waits for a connect.

A PostgreSQL connection can die between two requests (the server restarted, an idle
connection cut by a firewall or an administrator): a statement that finds its
connection broken before anything of its transaction ran reconnects and runs once
more. A connection lost in the middle of a transaction ends it uncommitted and
raises StorageError (the upload API answers 503: the appliance sends the day again,
and the office stores it once).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filterd.errors import FilterdError


class StorageError(FilterdError):
    """The office database is unreachable, or a request contradicts what is stored."""


class DuplicateSchool(StorageError):
    pass


# `{clustered}`: SQLite stores these tables in their primary key's b-tree (WITHOUT ROWID),
# not as a rowid table plus an index holding the same columns again. With the day first in
# each key (the pages read ranges of days) no other index is needed: 40% smaller per school
# and day (bench/README.md, "Office ingest"). PostgreSQL has no such option.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE schools (id TEXT PRIMARY KEY, name TEXT NOT NULL, district TEXT NOT NULL,"
        " province TEXT NOT NULL, key_b64 TEXT NOT NULL, enrolled_at TEXT NOT NULL)",
        "CREATE TABLE reports (school_id TEXT NOT NULL REFERENCES schools(id), day TEXT NOT NULL,"
        " received_at TEXT NOT NULL, schema_version INTEGER NOT NULL, app_version TEXT,"
        " list_version TEXT, list_updated_at TEXT, uptime_s BIGINT, events_dropped BIGINT,"
        " upstream_failures BIGINT, size_gz BIGINT NOT NULL, body_sha256 TEXT NOT NULL,"
        " PRIMARY KEY (school_id, day))",
        "CREATE INDEX reports_day ON reports (day)",
        # One row per school, day, group, category and action: `n` is the day's total (what
        # every page sums) and `hours` the 24 hourly counts as text "n0,n1,...,n23". A row per
        # hour made the table several times larger for no page that needs it.
        "CREATE TABLE report_counts (school_id TEXT NOT NULL, day TEXT NOT NULL, grp TEXT NOT NULL,"
        " category TEXT NOT NULL, action TEXT NOT NULL, n BIGINT NOT NULL, hours TEXT NOT NULL,"
        # day first: every page reads a range of days across schools, and the key serves it
        # without a second index
        " PRIMARY KEY (day, school_id, grp, category, action)){clustered}",
        "CREATE TABLE report_top (school_id TEXT NOT NULL, day TEXT NOT NULL,"
        " category TEXT NOT NULL, name TEXT NOT NULL, devices BIGINT NOT NULL,"
        " hits BIGINT NOT NULL,"
        " PRIMARY KEY (day, school_id, category, name)){clustered}",
        "CREATE TABLE report_devices (school_id TEXT NOT NULL, day TEXT NOT NULL,"
        " grp TEXT NOT NULL,"
        " devices BIGINT NOT NULL, PRIMARY KEY (day, school_id, grp)){clustered}",
        "CREATE TABLE report_bypass (school_id TEXT NOT NULL, day TEXT NOT NULL,"
        " grp TEXT NOT NULL,"
        " attempts BIGINT NOT NULL, devices BIGINT NOT NULL, PRIMARY KEY (day, school_id, grp))"
        "{clustered}",
        "CREATE TABLE nonces (school_id TEXT NOT NULL, nonce TEXT NOT NULL, ts BIGINT NOT NULL,"
        " PRIMARY KEY (school_id, nonce))",
        "CREATE TABLE users (username TEXT PRIMARY KEY, pw_hash TEXT NOT NULL, role TEXT NOT NULL,"
        " created_at TEXT NOT NULL)",
    ),
    (
        # report version 2: a group's device count below k arrives as "fewer than k"
        "ALTER TABLE report_devices ADD COLUMN below_k INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # Ed25519: the office keeps each school's public keys only, and one-time enrolment
        # codes as SHA-256 hashes. The shared HMAC keys of version 1 are wiped: every
        # school enrols again with a code (docs/office.md).
        "CREATE TABLE school_keys (school_id TEXT NOT NULL REFERENCES schools(id),"
        " key_id TEXT NOT NULL, public_key TEXT NOT NULL, added_at TEXT NOT NULL,"
        " revoked_at TEXT, PRIMARY KEY (school_id, key_id))",
        "CREATE TABLE enrolment_codes (code_sha256 TEXT PRIMARY KEY,"
        " school_id TEXT NOT NULL REFERENCES schools(id), created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL, used_at TEXT)",
        "UPDATE schools SET key_b64 = ''",
    ),
    (
        # what the office's documents say about it: agency, place, signer (document.py)
        "CREATE TABLE office_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # read-only export API tokens for authorities (export.py): only their SHA-256
        "CREATE TABLE export_tokens (token_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL,"
        " created_at TEXT NOT NULL, revoked_at TEXT, last_used_at TEXT)",
    ),
    (
        # Signed feed versions the office publishes (filterd/sync/office/feeds.py): the
        # envelope is kept as sent, so every appliance gets the same bytes.
        "CREATE TABLE feeds (kind TEXT NOT NULL, version BIGINT NOT NULL,"
        " issued_at TEXT NOT NULL, entries BIGINT NOT NULL, envelope TEXT NOT NULL,"
        " PRIMARY KEY (kind, version))",
        # Which feed version each school last fetched (the office's "who is behind" view).
        "CREATE TABLE feed_pulls (school_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " version BIGINT NOT NULL, pulled_at TEXT NOT NULL, PRIMARY KEY (school_id, kind))",
        # Reports of harmful sites forwarded by schools (no reporter identity: see docs).
        "CREATE TABLE site_reports (id TEXT PRIMARY KEY, school_id TEXT NOT NULL,"
        " site TEXT NOT NULL, categories TEXT NOT NULL, note TEXT NOT NULL,"
        " reported_at TEXT NOT NULL, received_at TEXT NOT NULL, status TEXT NOT NULL,"
        " decided_at TEXT, decided_by TEXT)",
        "CREATE INDEX site_reports_site ON site_reports (site)",
    ),
)


@dataclass(frozen=True, slots=True)
class School:
    id: str
    name: str
    district: str
    province: str
    key_b64: str      # always empty since migration 3 (was the shared HMAC key)
    enrolled_at: str


@dataclass(frozen=True, slots=True)
class SchoolKey:
    school_id: str
    key_id: str
    public_key: str   # base64url of the raw 32-byte Ed25519 public key
    added_at: str
    revoked_at: str | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner_only(path: Path) -> None:
    """The office database is readable by its service user only: created 0600 before
    SQLite opens it (its -wal and -shm files take the same mode), and an older 0644 file
    is tightened."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with suppress(FileNotFoundError):
                if p.stat().st_mode & 0o077:
                    os.chmod(p, 0o600)


class Storage:
    """`Storage.open(url)`: `sqlite:///path/office.db` or `postgresql://...`."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            self.backend = "sqlite"
            self.path = Path(url.removeprefix("sqlite:///"))
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _owner_only(self.path)
        elif url.startswith(("postgresql://", "postgres://")):
            self.backend = "postgres"
            try:
                import psycopg  # optional dependency: the `postgres` extra
            except ImportError as exc:
                raise StorageError("PostgreSQL needs psycopg: pip install 'filterd[postgres]'"
                                   ) from exc
        else:
            raise StorageError(f"unsupported database URL {url!r} "
                               "(use sqlite:///path or postgresql://...)")
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        if self.backend == "postgres":
            import psycopg

            self._operational: type[Exception] | tuple[type[Exception], ...] = \
                psycopg.OperationalError
        else:
            self._operational = sqlite3.OperationalError

    # connections -------------------------------------------------------------
    def _connect(self) -> Any:
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StorageError(f"cannot connect to the office database: {exc}") from exc

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.backend == "postgres" and (conn.closed or conn.broken):
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.backend == "postgres" else sql

    def _lost(self, conn: Any, exc: Exception) -> bool:
        """Whether `exc` means `conn` is gone (then it is dropped: the next use reconnects)."""
        if self.backend != "postgres" or not (conn.closed or conn.broken):
            return False
        self._local.conn = None
        with self._lock, suppress(ValueError):
            self._all.remove(conn)
        with suppress(Exception):
            conn.close()
        return True

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        for attempt in (1, 2):
            conn = self._conn()
            try:
                cur = conn.execute(self._sql(sql), tuple(params))
                return list(cur.fetchall())
            except self._operational as exc:
                if attempt == 2 or not self._lost(conn, exc):
                    raise StorageError(f"office database error: {exc}") from exc
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        if self.backend == "sqlite":
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self, conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return
        for attempt in (1, 2):
            conn = self._conn()
            tx = conn.transaction()
            try:
                tx.__enter__()   # BEGIN: nothing of the caller's work has run yet
                break
            except self._operational as exc:
                if attempt == 2 or not self._lost(conn, exc):
                    raise StorageError(f"office database error: {exc}") from exc
        try:
            yield Tx(self, conn)
        except BaseException as exc:
            try:
                tx.__exit__(type(exc), exc, exc.__traceback__)
            except self._operational as lost:   # the rollback found the connection gone
                self._lost(conn, lost)
            if isinstance(exc, self._operational):
                self._lost(conn, exc)
                raise StorageError(f"office database error: {exc}") from exc
            raise
        try:
            tx.__exit__(None, None, None)   # COMMIT
        except self._operational as exc:
            self._lost(conn, exc)
            raise StorageError(f"office database error while committing: {exc}") from exc

    # schema ------------------------------------------------------------------
    def migrate(self) -> None:
        with self.transaction() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS office_migrations (version INTEGER PRIMARY KEY,"
                       " applied_at TEXT NOT NULL)")
        done = self.query("SELECT COALESCE(MAX(version), 0) FROM office_migrations")[0][0]
        for version, steps in enumerate(MIGRATIONS[done:], start=done + 1):
            with self.transaction() as tx:
                for step in steps:
                    tx.execute(step.replace(
                        "{clustered}", " WITHOUT ROWID" if self.backend == "sqlite" else ""))
                tx.execute("INSERT INTO office_migrations (version, applied_at) VALUES (?, ?)",
                           [version, _now()])

    # schools -------------------------------------------------------------------
    def add_school(self, school: School) -> None:
        with self.transaction() as tx:
            n = tx.execute("INSERT INTO schools (id, name, district, province, key_b64,"
                           " enrolled_at)"
                           " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                           [school.id, school.name, school.district, school.province,
                            school.key_b64, school.enrolled_at])
            if n == 0:
                raise DuplicateSchool(f"school {school.id!r} is already enrolled")

    def keys(self, school_id: str) -> list[SchoolKey]:
        return [SchoolKey(*r) for r in self.query(
            "SELECT school_id, key_id, public_key, added_at, revoked_at FROM school_keys"
            " WHERE school_id = ? ORDER BY added_at, key_id", [school_id])]

    def key(self, school_id: str, key_id: str) -> SchoolKey | None:
        rows = self.query("SELECT school_id, key_id, public_key, added_at, revoked_at"
                          " FROM school_keys WHERE school_id = ? AND key_id = ?",
                          [school_id, key_id])
        return SchoolKey(*rows[0]) if rows else None

    def school(self, school_id: str) -> School | None:
        rows = self.query("SELECT id, name, district, province, key_b64, enrolled_at FROM schools"
                          " WHERE id = ?", [school_id])
        return School(*rows[0]) if rows else None

    def schools(self) -> list[School]:
        return [School(*r) for r in self.query(
            "SELECT id, name, district, province, key_b64, enrolled_at FROM schools"
            " ORDER BY province, district, name, id")]

    # settings ------------------------------------------------------------------
    def settings(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.query("SELECT key, value FROM office_settings")]

    def set_settings(self, values: dict[str, str]) -> None:
        with self.transaction() as tx:
            for k, v in values.items():
                tx.execute("DELETE FROM office_settings WHERE key = ?", [k])
                tx.execute("INSERT INTO office_settings (key, value) VALUES (?, ?)", [k, v])

    # users -----------------------------------------------------------------------
    def set_user(self, username: str, pw_hash: str, role: str) -> None:
        with self.transaction() as tx:
            tx.execute("DELETE FROM users WHERE username = ?", [username])
            tx.execute("INSERT INTO users (username, pw_hash, role, created_at)"
                       " VALUES (?, ?, ?, ?)",
                       [username, pw_hash, role, _now()])

    def user(self, username: str) -> tuple[str, str, str] | None:
        rows = self.query("SELECT username, pw_hash, role FROM users WHERE username = ?",
                          [username])
        return rows[0] if rows else None


class Tx:
    def __init__(self, storage: Storage, conn: Any) -> None:
        self.storage = storage
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self.conn.execute(self.storage._sql(sql), tuple(params))
        return cur.rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.conn.execute(self.storage._sql(sql), tuple(params)).fetchall())

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.storage.backend == "sqlite":
            self.conn.executemany(sql, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self.storage._sql(sql), rows)
