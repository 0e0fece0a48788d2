"""The outbox: every finished day is built once into `<data_dir>/outbox/`, then delivered.

A report is written (atomically, fsynced) before any attempt to send it and
removed only when the office acknowledges it for the same school and day. After
an outage of days, each missed day is built and delivered exactly once; the
office is idempotent on (school, day), so a lost acknowledgement cannot double
count. Progress lives in `<data_dir>/sync/state.json` (the admin page reads
`last_success_at` from it).
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from filterd.state.atomic import atomic_write
from filterd.sync import schema
from filterd.sync.kanon import K_DEFAULT, check_k
from filterd.sync.pseudonym import load_or_create_secret
from filterd.sync.report import (
    Health,
    ListInfo,
    build_report,
    first_data_day,
    last_finished_day,
)
from filterd.sync.uploader import OfficeUnreachable, Uploader, UploadRejected

MAX_CATCH_UP_DAYS = 90       # older days are gone from the event log anyway (retention)
# No report is for a day before this. A Raspberry Pi has no real-time clock: it boots with
# the time it saved at shutdown, or 1970, until NTP sets it. A clock before this is such a
# clock, and its "yesterday" is a day that never happened.
FIRST_REPORT_DAY = date(2025, 1, 1)
# Days built lately, kept in the state so a clock that went back (after a wrong jump
# forward) can tell which real days were already built (see days_to_build).
BUILT_DAYS_KEPT = 120
BACKOFF_BASE = 300           # seconds after the first failed run
BACKOFF_MAX = 6 * 3600       # never wait longer than this between attempts


@dataclass(frozen=True, slots=True)
class SyncSettings:
    data_dir: Path
    school_id: str
    timezone: ZoneInfo
    office_url: str = ""
    k: int = K_DEFAULT
    token_file: Path | None = None
    db_file: Path | None = None

    def __post_init__(self) -> None:
        check_k(self.k)

    @property
    def db(self) -> Path:
        return self.db_file or self.data_dir / "filterd.db"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "sync" / "state.json"

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "sync" / "secret"

    @classmethod
    def from_config(cls, config: Any) -> SyncSettings:
        token = getattr(config.sync, "token_file", None)
        return cls(data_dir=Path(config.data_dir), school_id=config.school_id,
                   timezone=config.timezone, office_url=config.sync.office_url or "",
                   k=config.sync.k_anonymity, token_file=Path(token) if token else None)


@dataclass
class SyncResult:
    built: list[str] = field(default_factory=list)       # days written to the outbox now
    delivered: list[str] = field(default_factory=list)   # days acknowledged now
    duplicates: list[str] = field(default_factory=list)  # acknowledged as already received
    rejected: list[tuple[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)     # still in the outbox
    error: str | None = None
    skipped_backoff: bool = False
    clock: str | None = None   # why no day was built: the clock looks wrong


class Outbox:
    def __init__(self, settings: SyncSettings, *,
                 lists: Callable[[], ListInfo] | None = None) -> None:
        self.s = settings
        self._lists = lists or (lambda: ListInfo())

    # state -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.s.state_file.read_text())
        except FileNotFoundError:
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.s.state_file, json.dumps(state, indent=2, sort_keys=True).encode())

    def path_for(self, day: date | str) -> Path:
        d = day if isinstance(day, str) else day.isoformat()
        return self.s.outbox_dir / f"{self.s.school_id}_{d}.json.gz"

    def pending(self) -> list[Path]:
        if not self.s.outbox_dir.is_dir():
            return []
        return sorted(self.s.outbox_dir.glob(f"{self.s.school_id}_*.json.gz"))

    @staticmethod
    def day_of(path: Path) -> str:
        return path.name.rsplit("_", 1)[1].removesuffix(".json.gz")

    # building ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection | None:
        if not self.s.db.exists():
            return None
        return sqlite3.connect(f"file:{self.s.db}?mode=ro", uri=True, timeout=30)

    def clock_problem(self, now: datetime) -> str | None:
        """Words for why `now` cannot be trusted to name a finished day, or None."""
        if now.astimezone(self.s.timezone).date() <= FIRST_REPORT_DAY:
            return (f"the clock says {now:%Y-%m-%d %H:%M} UTC, before this appliance could "
                    "have run: no report is built until the time is set (NTP)")
        return None

    def days_to_build(self, now: datetime, *, repair: bool = True) -> list[date]:
        """The finished days not yet built (none while the clock looks wrong). `repair`:
        withdraw a wrong clock's future reports (see below); a dry run only looks."""
        if self.clock_problem(now):
            return []
        last = last_finished_day(now, self.s.timezone)
        state = self.state()
        built = state.get("last_built_day")
        if built and date.fromisoformat(built) > last:
            # The clock went back past days already built: those were built on a clock that
            # was wrong (a jump into the future). Withdraw their reports still waiting, and
            # go on from the last real day built, so the school is not locked out of
            # reports until that future date comes.
            real = [d for d in state.get("built_days", []) if d <= last.isoformat()]
            built = max(real) if real else None
            if repair:
                self._withdraw_after(last)
                state = self.state()
                state["last_built_day"] = built
                state["built_days"] = real
                self._save_state(state)
        if built:
            start = date.fromisoformat(built) + timedelta(days=1)
        else:
            conn = self._connect()
            first = first_data_day(conn, self.s.timezone) if conn else None
            if conn:
                conn.close()
            start = min(first, last) if first else last
        start = max(start, last - timedelta(days=MAX_CATCH_UP_DAYS - 1))
        return [start + timedelta(days=i) for i in range((last - start).days + 1)]

    def build_reports(self, days: list[date], now: datetime) -> Iterator[dict[str, Any]]:
        secret = load_or_create_secret(self.s.secret_file)
        conn = self._connect()
        mem = sqlite3.connect(":memory:")  # no database yet: empty reports, still a sign of life
        try:
            for day in days:
                yield build_report(conn or mem, school_id=self.s.school_id, day=day,
                                   tz=self.s.timezone, secret=secret, k=self.s.k,
                                   health=Health.read(self.s.data_dir, now),
                                   lists=self._lists(), now=now)
        finally:
            if conn:
                conn.close()
            mem.close()

    def build_missing(self, now: datetime) -> list[str]:
        """Write every finished, not yet built day to the outbox; return those days."""
        days = self.days_to_build(now)
        built = []
        for report in self.build_reports(days, now):
            path = self.path_for(report["day"])
            if not path.exists():  # a crash after writing but before the state update
                atomic_write(path, schema.encode(report))
                built.append(report["day"])
            state = self.state()
            state["last_built_day"] = report["day"]
            state["built_days"] = [*state.get("built_days", []), report["day"]][-BUILT_DAYS_KEPT:]
            self._save_state(state)
        return built

    def _withdraw_after(self, last: date) -> list[str]:
        """Remove the not yet delivered reports for days after `last` (a wrong clock's)."""
        gone = []
        for path in self.pending():
            day = self.day_of(path)
            if day > last.isoformat():
                path.unlink(missing_ok=True)
                gone.append(day)
        return gone

    # delivering ----------------------------------------------------------------
    def deliver(self, uploader: Uploader, *, now: datetime, retries: tuple[float, ...] = (2, 8),
                respect_backoff: bool = True, sleep: Callable[[float], None] = time.sleep,
                result: SyncResult | None = None) -> SyncResult:
        result = result or SyncResult()
        state = self.state()
        next_at = state.get("next_attempt_at")
        if respect_backoff and next_at and now.timestamp() < next_at:
            result.skipped_backoff = True
            result.error = state.get("last_error")
            result.pending = [self.day_of(p) for p in self.pending()]
            return result
        for path in self.pending():
            day = self.day_of(path)
            body = path.read_bytes()
            try:
                ack = self._send_with_retries(uploader, body, retries, sleep)
            except OfficeUnreachable as exc:
                result.error = str(exc)
                self._record_failure(str(exc), now)
                break
            except UploadRejected as exc:
                # Kept in the outbox for a person to look at; later days still go out.
                result.rejected.append((day, str(exc)))
                result.error = str(exc)
                continue
            if ack.day != day or ack.school_id != self.s.school_id:
                result.error = f"office acknowledged {ack.school_id}/{ack.day}, expected {day}"
                self._record_failure(result.error, now)
                break
            path.unlink()
            (result.duplicates if ack.status == "duplicate" else result.delivered).append(day)
            state = self.state()
            state.update(last_success_at=now.astimezone(UTC).isoformat(), last_success_day=day,
                         failures=0, next_attempt_at=None, last_error=None)
            self._save_state(state)
        result.pending = [self.day_of(p) for p in self.pending()]
        return result

    @staticmethod
    def _send_with_retries(uploader: Uploader, body: bytes, retries: tuple[float, ...],
                           sleep: Callable[[float], None]):
        for delay in (*retries, None):
            try:
                return uploader.send(body)
            except OfficeUnreachable:
                if delay is None:
                    raise
                sleep(delay)
        raise AssertionError("unreachable")

    def _record_failure(self, message: str, now: datetime) -> None:
        state = self.state()
        failures = int(state.get("failures") or 0) + 1
        wait = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1))
        state.update(failures=failures, last_error=message,
                     last_error_at=now.astimezone(UTC).isoformat(),
                     next_attempt_at=now.timestamp() + wait)
        self._save_state(state)

    def dry_run(self, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """(day, report) for everything that would leave now: the outbox, then unbuilt days."""
        out = []
        for path in self.pending():
            out.append((self.day_of(path), json.loads(gzip.decompress(path.read_bytes()))))
        queued = {d for d, _ in out}
        for report in self.build_reports(self.days_to_build(now, repair=False), now):
            if report["day"] not in queued:
                schema.validate(report)
                out.append((report["day"], report))
        return out


def run_sync(settings: SyncSettings, uploader: Uploader | None, *, now: datetime | None = None,
             retries: tuple[float, ...] = (2, 8), respect_backoff: bool = True,
             lists: Callable[[], ListInfo] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> SyncResult:
    """Build every missing day, then deliver the outbox (if an office is configured)."""
    now = now or datetime.now(UTC)
    box = Outbox(settings, lists=lists)
    result = SyncResult(built=box.build_missing(now), clock=box.clock_problem(now))
    if uploader is None:
        result.pending = [box.day_of(p) for p in box.pending()]
        return result
    return box.deliver(uploader, now=now, retries=retries, respect_backoff=respect_backoff,
                       sleep=sleep, result=result)
