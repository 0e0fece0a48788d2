"""The event log: what was blocked, rewritten or hit a bypass name, and counts of the rest.

Writes never happen on the query path: `record()` puts a small tuple on a
bounded queue (and counts what it must drop when the queue is full), and one
writer thread batches the rows into SQLite every `flush_interval` seconds.
With WAL and one transaction per batch, a `kill -9` loses at most the batch
not yet written and never corrupts the file.

Allowed queries are only counted per hour, group, category, action and path
(children's privacy); storing them one by one is the explicit
`store_allowed` setting.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from filterd.policy.decision import Action, Decision, Query, Reason
from filterd.state.db import db_path, migrate, open_db
from filterd.state.hours import hour_of

log = logging.getLogger(__name__)

MODULE = "events"
PURGE_EVERY = 24 * 3600.0
# The writer thread runs under SCHED_IDLE: on a core the query path needs, a waking query
# always preempts a batch at once (p99 at 10k QPS on one core: 0.32-0.35 ms, against
# 0.44-0.55 at nice 5). Under DNS saturation the writer then falls behind, so the queue
# bound (queue_max) is what keeps its memory small; what does not fit is counted as
# dropped. Where SCHED_IDLE is refused, nice WRITER_NICE.
WRITER_NICE = 5
# A batch is built and inserted ROW_CHUNK rows at a time (one transaction still), with a
# short sleep between chunks. The query path shares the core: the scheduler lets a
# running thread finish its slice (milliseconds) before a waking one preempts it, and
# while the writer runs Python it takes the GIL at each of the query path's syscalls.
# 3,000 rows in one go (30 ms) held queries back by 2-5 ms several times a second.
ROW_CHUNK = 64
ROW_PAUSE = 0.0005
# SCHED_IDLE gets next to no CPU on a machine busy with other work (the HTTP proxy, a list
# update, another service): the writer then hardly runs and events are dropped. When events
# have waited this long with no batch written, or a quarter of the queue is used, the daemon's watch
# raises the writer to nice WRITER_NICE until it has caught up (see EventLog.watch).
STARVED_AFTER = 1.0
# While writing fails (disk full, read-only, locked) or events are dropped: one line when it
# starts, one when it ends, and a summary this often in between.
FAULT_SUMMARY_EVERY = 300.0
# A wall-clock step larger than this (NTP after a boot without a real-time clock, or a
# wrong time source) postpones the retention purge by a day (see EventLog._purge_allowed).
CLOCK_JUMP = 3600.0
# count_devices only serves the next daily reports (built each morning; a few days of
# catch-up after an outage), so it is kept much shorter than the event log.
DEVICE_DAYS = 8
SEEN_MAX = 200_000   # (hour, cell, device) kept in memory while writes fail

EVENT_COLUMNS = ("ts", "client_ip", "client_mac", "group_id", "name", "qtype", "action",
                 "reason", "category", "rule", "source", "list_version", "path", "url",
                 "search_term")


def _v1(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE events (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, client_ip TEXT, client_mac TEXT,
        group_id TEXT, name TEXT, qtype TEXT, action TEXT, reason TEXT, category TEXT,
        rule TEXT, source TEXT, list_version TEXT, path TEXT, url TEXT, search_term TEXT)""")
    db.execute("CREATE INDEX events_ts ON events (ts)")
    db.execute("CREATE INDEX events_group_ts ON events (group_id, ts)")
    db.execute("""CREATE TABLE counts (
        hour TEXT NOT NULL, group_id TEXT NOT NULL, category TEXT NOT NULL, action TEXT NOT NULL,
        path TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (hour, group_id, category, action, path))""")


def _v2(db: sqlite_utils.Database) -> None:
    # Which devices stand behind each hourly count, so the daily report can publish a
    # count only when at least k devices share it (docs/privacy.md). Kept DEVICE_DAYS only.
    db.execute("""CREATE TABLE count_devices (
        hour TEXT NOT NULL, group_id TEXT NOT NULL, category TEXT NOT NULL, action TEXT NOT NULL,
        device TEXT NOT NULL,
        PRIMARY KEY (hour, group_id, category, action, device)) WITHOUT ROWID""")


MIGRATIONS = [_v1, _v2]


def init_db(db: sqlite_utils.Database) -> None:
    migrate(db, MODULE, MIGRATIONS)


def event_row(decision: Decision, query: Query, ts: float,
              search_term: str | None = None) -> tuple:
    src = decision.source
    return (ts, query.client_ip, query.client_mac, decision.group, decision.name, query.qtype,
            decision.action.value, decision.reason.value, decision.category, decision.rule,
            str(src), src.version if src.kind == "list" else None, query.path,
            query.url if query.path == "intercept" else None, search_term)


def describe_write_error(exc: BaseException) -> str:
    """Words for why a batch was not written (the log line and the health page say this)."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or code == 13 or \
            "disk is full" in text or "database or disk is full" in text:
        return "disk full"
    if (isinstance(exc, OSError) and exc.errno == errno.EROFS) or "readonly" in text:
        return "read-only file system"
    if "locked" in text or "busy" in text:
        return "database locked by another process"
    return text or type(exc).__name__


def lower_priority() -> str:
    """Put the calling thread below the query path: SCHED_IDLE, else nice WRITER_NICE."""
    tid = threading.get_native_id()
    try:   # Linux: both are per thread
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (OSError, AttributeError):
        pass
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, max(WRITER_NICE, os.getpriority(os.PRIO_PROCESS, 0)))
        return "nice"
    return "unchanged"


class EventLog:
    """Batched, bounded, crash-safe event writer. Thread-safe `record()`."""

    def __init__(self, db_path: str | Path, flush_interval: float = 1.0, queue_max: int = 5_000,
                 *, store_allowed: bool = False, retention_days: int = 30) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if queue_max <= 0:
            raise ValueError("queue_max must be positive")
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.db_path = Path(db_path)
        self.flush_interval = flush_interval
        self.store_allowed = store_allowed
        self.retention_days = retention_days
        self._hour = (-1, "")
        # A deque, not a queue.Queue: append and popleft are atomic under the GIL, and
        # Queue's lock and condition cost more than the rest of record() on the query path.
        self._queue: deque[tuple] = deque()
        self.queue_max = queue_max
        self._counts: dict[tuple[str, str, str, str, str], int] = {}
        # (hour, group, category, action, device) seen since the last batch, and those
        # already stored this hour (so a busy device costs one row per hour and cell)
        self._seen: set[tuple[str, str, str, str, str]] = set()
        self._stored_seen: set[tuple[str, str, str, str, str]] = set()
        self._stored_hour = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._generation = 0
        self.dropped = 0
        self.written = 0
        # Called by the writer with each batch of counts, once, before it is stored (the
        # daemon's metrics come from here, so the query path counts each decision once).
        self.on_counts: Callable[[dict[tuple[str, str, str, Action, str], int]], None] | None \
            = None
        self._unwritten: dict[tuple[str, str, str, Action, str], int] = {}  # reported, not stored
        # Called by the writer inside each batch's transaction with the connection and the
        # batch's items (decision, query, ts, search_term): the alerts count their events
        # there, so an event is logged if and only if it is counted into its alert.
        self.on_batch: Callable[[Any, list[tuple]], None] | None = None
        self._thread: threading.Thread | None = None
        self._tid: int | None = None
        self._clock_offset = time.time() - time.monotonic()
        self.priority = "unchanged"
        self.progress = time.monotonic()   # when the writer last finished a cycle
        # Fault state, for the log and the metrics (see _note_failure / _note_written).
        self.failing_since: float | None = None
        self.last_error = ""
        self.lost_while_failing = 0
        self._fault_summary_at = 0.0
        self._dropped_seen = 0
        self._dropping_since: float | None = None
        self._drop_summary = (0.0, 0)
        self.boosts = 0
        self._boosts_logged = 0
        self._boost_logged_at = -FAULT_SUMMARY_EVERY
        db = open_db(self.db_path)
        init_db(db)
        db.conn.close()

    # -- hot path ---------------------------------------------------------------

    def record(self, decision: Decision, query: Query, *, search_term: str | None = None) -> None:
        """Log one decision. Never blocks and never raises on overload."""
        ts = time.time()
        hour = self._hour
        if int(ts // 3600) != hour[0]:
            hour = self._hour = (int(ts // 3600), hour_of(ts))
        # Action is a StrEnum: it is its own value (and sqlite stores it as text).
        action = decision.action
        key = (hour[1], decision.group, decision.category or "", action, query.path)
        device = query.client_mac or query.client_ip
        with self._lock:
            counts = self._counts
            counts[key] = counts.get(key, 0) + 1
            if device:
                self._seen.add((hour[1], decision.group, decision.category or "", action,
                                device))
        if action is Action.BLOCK or action is Action.REWRITE or (
                self.store_allowed or decision.reason is Reason.BYPASS):
            # The row is built by the writer thread: the query path only queues.
            if len(self._queue) < self.queue_max:
                self._queue.append((decision, query, ts, search_term))
            else:
                self.dropped += 1

    # -- writer -------------------------------------------------------------------

    def start(self) -> EventLog:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the writer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything recorded before this call is written (for tests and shutdown)."""
        if self._thread is None:
            db = open_db(self.db_path)
            try:
                self._write(db)
            finally:
                db.conn.close()
            return
        with self._flushed:
            target = self._generation + 2   # the batch in progress may predate this call
            self._flushed.wait_for(lambda: self._generation >= target or self._thread is None,
                                   timeout)

    def _run(self) -> None:
        self._tid = threading.get_native_id()
        self.priority = lower_priority()
        db = open_db(self.db_path)
        next_purge = 0.0
        # Wall clock minus monotonic: it changes only when the wall clock is set (NTP, a
        # Pi without a real-time clock). See _purge_allowed.
        self._clock_offset = time.time() - time.monotonic()
        try:
            while not self._stop.is_set():
                self._stop.wait(self.flush_interval)
                try:
                    self._write(db)
                    if time.monotonic() >= next_purge:
                        if self._purge_allowed():
                            self.purge(self.retention_days, db=db)
                        next_purge = time.monotonic() + PURGE_EVERY
                except Exception as exc:
                    self._note_failure(exc)
                else:
                    self._note_written()
                self._note_drops()
                self.progress = time.monotonic()
                if self.priority == "boosted" and not self._queue:
                    self.priority = lower_priority()   # caught up: back out of the way
                with self._flushed:
                    self._generation += 1
                    self._flushed.notify_all()
            with contextlib.suppress(Exception):
                self._write(db)
        finally:
            db.conn.close()
            with self._flushed:
                self._generation += 1
                self._flushed.notify_all()

    # -- faults: one line when they start and end, summaries between, never per event ------

    def _note_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        why = describe_write_error(exc)
        if self.failing_since is None:
            self.failing_since = now
            self.lost_while_failing = self.dropped
            self._fault_summary_at = now + FAULT_SUMMARY_EVERY
            self.last_error = why
            if isinstance(exc, sqlite3.Error | OSError):
                log.warning("event log %s cannot be written (%s); DNS keeps answering, up to "
                            "%d events wait in memory and the rest are counted as lost",
                            self.db_path, why, self.queue_max)
            else:   # not a known fault: a bug, worth its traceback once
                log.error("event log write failed (%s); will retry", why, exc_info=exc)
        elif now >= self._fault_summary_at:
            self._fault_summary_at = now + FAULT_SUMMARY_EVERY
            log.warning("event log still not written after %.0f s (%s): %d events lost so far",
                        now - self.failing_since, why, self.dropped - self.lost_while_failing)
        self.last_error = why

    def _note_written(self) -> None:
        if self.failing_since is not None:
            log.warning("event log written again after %.0f s (%s before); %d events lost "
                        "meanwhile", time.monotonic() - self.failing_since, self.last_error,
                        self.dropped - self.lost_while_failing)
            self.failing_since = None
            self.last_error = ""

    def _note_drops(self) -> None:
        """The queue overflowed (the writer is behind): one line, then counts."""
        dropped, now = self.dropped, time.monotonic()
        new = dropped > self._dropped_seen
        quiet = self.failing_since is not None   # the failure's own lines say it then
        if new and self._dropping_since is None:
            self._dropping_since = now
            self._drop_summary = (now + FAULT_SUMMARY_EVERY, dropped)
            if not quiet:
                log.warning("event writer behind: the queue of %d is full, events are "
                            "dropped and counted (%d so far)", self.queue_max, dropped)
        elif new and now >= self._drop_summary[0]:
            if not quiet:
                log.warning("event writer still behind: %d events dropped in the last %.0f s",
                            dropped - self._drop_summary[1], FAULT_SUMMARY_EVERY)
            self._drop_summary = (now + FAULT_SUMMARY_EVERY, dropped)
        elif not new and self._dropping_since is not None and \
                len(self._queue) < self.queue_max // 2:
            if not quiet:
                log.warning("event writer caught up after %.0f s", now - self._dropping_since)
            self._dropping_since = None
        self._dropped_seen = dropped

    def watch(self, now: float | None = None) -> bool:
        """Called about once a second from the event loop: if events have waited more than
        STARVED_AFTER with no batch written (SCHED_IDLE on a busy machine), raise the writer
        to nice WRITER_NICE until it has caught up. True if it did so now."""
        now = time.monotonic() if now is None else now
        depth = len(self._queue)
        if (self.priority == "idle" and self._tid is not None and depth
                and (now - self.progress > max(STARVED_AFTER, 2 * self.flush_interval)
                     or depth > self.queue_max // 4)):
            try:
                os.sched_setscheduler(self._tid, os.SCHED_OTHER, os.sched_param(0))
                os.setpriority(os.PRIO_PROCESS, self._tid, WRITER_NICE)
            except (OSError, AttributeError):
                return False
            self.priority = "boosted"
            self.boosts += 1
            # On a busy machine this repeats every few minutes: the first time, then a count.
            if now >= self._boost_logged_at + FAULT_SUMMARY_EVERY:
                more = self.boosts - self._boosts_logged - 1
                log.info("event writer behind under SCHED_IDLE (%d events waiting, last batch "
                         "%.1f s ago); running it at nice %d until it catches up%s", depth,
                         now - self.progress, WRITER_NICE,
                         f" ({more} more times since the last such line)" if more > 0 else "")
                self._boost_logged_at, self._boosts_logged = now, self.boosts
            return True
        return False

    @property
    def writable(self) -> bool:
        """False while the last write failed (disk full, read-only, locked)."""
        return self.failing_since is None

    @property
    def depth(self) -> int:
        """Events recorded and not yet written."""
        return len(self._queue)

    def _drain(self) -> list[tuple]:
        rows = []
        get = self._queue.popleft
        try:
            while True:
                rows.append(get())
        except IndexError:
            pass
        return rows

    def _write(self, db: sqlite_utils.Database) -> None:
        items = self._drain()
        rows: list[tuple] = []
        for i in range(0, len(items), ROW_CHUNK):
            if i:
                time.sleep(ROW_PAUSE)
            rows.extend([event_row(*item) for item in items[i:i + ROW_CHUNK]])
        with self._lock:
            counts, self._counts = self._counts, {}
            seen, self._seen = self._seen, set()
        seen = self._new_devices(seen)
        if counts and self.on_counts is not None:
            try:
                self.on_counts(counts)
            except Exception:
                log.exception("event counts hook failed")
        if self._unwritten:   # a failed batch's counts: stored now, never reported twice
            for k, n in counts.items():
                self._unwritten[k] = self._unwritten.get(k, 0) + n
            counts, self._unwritten = self._unwritten, {}
        if not rows and not counts and not seen:
            return
        cols = ", ".join(EVENT_COLUMNS)
        marks = ", ".join("?" * len(EVENT_COLUMNS))
        try:
            with db.conn:
                db.conn.execute("BEGIN IMMEDIATE")
                insert = f"INSERT INTO events ({cols}) VALUES ({marks})"
                for i in range(0, len(rows), ROW_CHUNK):
                    if i:
                        time.sleep(ROW_PAUSE)
                    db.conn.executemany(insert, rows[i:i + ROW_CHUNK])
                db.conn.executemany(
                    "INSERT INTO counts (hour, group_id, category, action, path, n)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hour, group_id, category, action,"
                    " path) DO UPDATE SET n = n + excluded.n",
                    [(h, g, c, str(a), p, n) for (h, g, c, a, p), n in counts.items()])
                db.conn.executemany(
                    "INSERT OR IGNORE INTO count_devices (hour, group_id, category, action,"
                    " device) VALUES (?, ?, ?, ?, ?)",
                    [(h, g, c, str(a), d) for (h, g, c, a, d) in seen])
                if items and self.on_batch is not None:
                    self.on_batch(db.conn, items)
        except Exception:
            # Keep the counts for the next batch so a busy database costs a delay, not data.
            self._unwritten = counts
            with self._lock:
                self._seen |= seen
                if len(self._seen) > SEEN_MAX:   # a long outage: forget (fails closed: the
                    self._seen = set()           # report then rolls those counts up or omits)
            self._stored_seen -= seen
            # Back at the front, oldest first, as far as the bound allows.
            room = max(0, self.queue_max - len(self._queue))
            self.dropped += max(0, len(items) - room)
            self._queue.extendleft(reversed(items[:room]))
            raise
        self.written += len(rows)
        # Free the batch a chunk at a time: thousands of events (with their decisions and
        # queries) freed in one go held the GIL, and so the query path, for several ms.
        while items:
            del items[-ROW_CHUNK:]
            del rows[-ROW_CHUNK:]
            time.sleep(0)

    def _new_devices(self, seen: set[tuple]) -> set[tuple]:
        """Drop what was already stored this hour (the writer thread only)."""
        if not seen:
            return seen
        newest = max(t[0] for t in seen)
        if newest != self._stored_hour:
            self._stored_hour = newest
            self._stored_seen = {t for t in self._stored_seen if t[0] == newest}
        seen = seen - self._stored_seen
        self._stored_seen |= {t for t in seen if t[0] == newest}
        return seen

    # -- maintenance ------------------------------------------------------------

    def _purge_allowed(self, wall: float | None = None, mono: float | None = None) -> bool:
        """False once after the wall clock jumped (by more than CLOCK_JUMP) since the last
        check: a clock set wrong into the future would have the purge delete every event.
        The next daily purge runs on the new clock (NTP has had a day to correct it)."""
        wall = time.time() if wall is None else wall
        mono = time.monotonic() if mono is None else mono
        jumped = (wall - mono) - self._clock_offset
        self._clock_offset = wall - mono
        if abs(jumped) > CLOCK_JUMP:
            log.warning("the wall clock moved %+.0f s since the last check; the daily "
                        "retention purge waits a day (a wrong clock would delete the event "
                        "log)", jumped)
            return False
        return True

    def purge(self, retention_days: int | None = None, *,
              db: sqlite_utils.Database | None = None, now: float | None = None) -> int:
        """Delete events and counts older than the retention; return events deleted."""
        days = retention_days if retention_days is not None else self.retention_days
        base = now if now is not None else time.time()
        own = db is None
        db = db or open_db(self.db_path)
        try:
            # Never more than a day past the newest event: a clock far in the future at
            # start-up (a bad real-time clock, a wrong NTP answer) must not empty the log.
            newest = db.conn.execute("SELECT MAX(ts) FROM events").fetchone()[0]
            if newest is not None and base > newest + 86400:
                base = newest + 86400
            cutoff = base - days * 86400
            with db.conn:
                db.conn.execute("BEGIN IMMEDIATE")
                n = db.conn.execute("DELETE FROM events WHERE ts < ?", [cutoff]).rowcount
                db.conn.execute("DELETE FROM counts WHERE hour < ?", [hour_of(cutoff)])
                now_ = now if now is not None else time.time()
                db.conn.execute("DELETE FROM count_devices WHERE hour < ?",
                                [hour_of(max(cutoff, now_ - DEVICE_DAYS * 86400))])
            return n
        finally:
            if own:
                db.conn.close()



def open_event_log(config: Any) -> EventLog:
    """The event log as filterd.yaml configures it (the one construction every process uses:
    the daemon, the HTTP side and the bypass monitor keep the same retention)."""
    ev = config.events
    return EventLog(db_path(config.data_dir), flush_interval=ev.flush_interval,
                    queue_max=ev.queue_max, store_allowed=ev.store_allowed,
                    retention_days=ev.retention_days)
