"""Receive one upload: authenticate, bound, validate, store once per (school, day).

Order matters: the signature is checked before the body is decompressed, so an
unauthenticated client cannot make the office expand anything; the nonce and the
report go in one transaction, so a refused upload leaves nothing stored.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from filterd.errors import FilterdError
from filterd.sync import schema
from filterd.sync.kanon import FEWER_THAN_K, K_DEFAULT, check_k, publishable_name
from filterd.sync.office.storage import Storage
from filterd.sync.signing import (
    H_KEY,
    H_NONCE,
    H_SCHOOL,
    H_SIGNATURE,
    H_TIMESTAMP,
    KEY_ID_RE,
    MAX_SKEW,
    NONCE_RE,
    SCHOOL_RE,
    b64d,
    verify,
)

MAX_GZIP_BYTES = 512 * 1024         # a real day is a few kilobytes compressed
MAX_JSON_BYTES = 4 * 1024 * 1024    # and well under this decompressed


class IngestError(FilterdError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


@dataclass(frozen=True, slots=True)
class Limits:
    max_gzip: int = MAX_GZIP_BYTES
    max_json: int = MAX_JSON_BYTES
    k: int = K_DEFAULT   # the office's own k: a report built with a smaller one is refused

    def __post_init__(self) -> None:
        check_k(self.k)


_prune_counter = itertools.count()


def receive(storage: Storage, headers: Mapping[str, str], body: bytes, *,
            now: datetime | None = None, limits: Limits = Limits()) -> dict[str, Any]:
    """Store the upload or raise IngestError with the HTTP status and a clear message."""
    now = now or datetime.now(UTC)
    if len(body) > limits.max_gzip:
        raise IngestError(413, f"upload too large: {len(body)} bytes (limit {limits.max_gzip})")
    school_id, nonce, ts = authenticate(storage, headers, body, now)
    try:
        report = schema.decode(body, limit=limits.max_json)
    except schema.ReportError as exc:
        status = 413 if "expands beyond" in str(exc) else 400
        raise IngestError(status, str(exc)) from exc
    if report["school_id"] != school_id:
        raise IngestError(400, f"report is for school {report['school_id']!r}, "
                               f"signed by {school_id!r}")
    _check_dates(report)
    if report["day"] > (now + timedelta(days=1)).date().isoformat():
        raise IngestError(400, f"report day {report['day']} is in the future")
    _check_unique(report)
    _check_private(report, limits.k)
    status = _store(storage, school_id, nonce, ts, report, body, now)
    return {"status": status, "school_id": school_id, "day": report["day"]}


def authenticate(storage: Storage, headers: Mapping[str, str], body: bytes,
                 now: datetime) -> tuple[str, str, int]:
    """(school id, nonce, timestamp) of a request signed with one of the school's enrolled,
    unrevoked Ed25519 keys, or IngestError 400/401. The nonce is not stored here: the caller
    stores it with what the request brings (`use_nonce`), so a refusal leaves nothing."""
    school_id = headers.get(H_SCHOOL, "")
    kid = headers.get(H_KEY, "")
    ts, nonce, sig = (headers.get(h, "") for h in (H_TIMESTAMP, H_NONCE, H_SIGNATURE))
    if not (school_id and kid and ts and nonce and sig):
        raise IngestError(401, "missing authentication headers "
                               f"({H_SCHOOL}, {H_KEY}, {H_TIMESTAMP}, {H_NONCE}, {H_SIGNATURE})")
    if not SCHOOL_RE.match(school_id) or not NONCE_RE.match(nonce) or not ts.isdigit() \
            or not KEY_ID_RE.match(kid):
        raise IngestError(400, "malformed authentication headers")
    if abs(now.timestamp() - int(ts)) > MAX_SKEW:
        raise IngestError(401, f"timestamp {ts} is more than {MAX_SKEW}s from the office clock "
                               "(check the appliance's time)")
    if storage.school(school_id) is None:
        raise IngestError(401, f"unknown school {school_id!r} (not enrolled)")
    key = storage.key(school_id, kid)
    if key is None:
        raise IngestError(401, f"key {kid} is not enrolled for {school_id!r} (enrol the "
                               "appliance with a one-time code from the office)")
    if key.revoked_at is not None:
        raise IngestError(401, f"key {kid} of {school_id!r} was revoked on {key.revoked_at} "
                               "(enrol the appliance again with a new code)")
    if not verify(b64d(key.public_key), school_id, ts, nonce, sig, body):
        raise IngestError(401, "signature does not match: the upload was altered or signed "
                               "with another key")
    return school_id, nonce, int(ts)


def use_nonce(tx, school_id: str, nonce: str, ts: int, now: datetime) -> None:
    """Record a request's nonce; IngestError 409 if it was already used (a replay)."""
    if next(_prune_counter) % 100 == 0:  # nonces older than the skew window cannot come back
        tx.execute("DELETE FROM nonces WHERE ts < ?", [int(now.timestamp()) - 2 * MAX_SKEW])
    if tx.execute("INSERT INTO nonces (school_id, nonce, ts) VALUES (?, ?, ?)"
                  " ON CONFLICT (school_id, nonce) DO NOTHING", [school_id, nonce, ts]) == 0:
        raise IngestError(409, "replayed request: this nonce was already used")


def _check_dates(report: dict[str, Any]) -> None:
    """The schema checks the shape of dates; the pages parse them, so they must be real."""
    try:
        date.fromisoformat(report["day"])
        for value in (report["generated_at"], report["lists"]["updated_at"]):
            if value is not None:
                datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as exc:
        raise IngestError(400, f"report has an impossible date: {exc}") from exc


def _check_unique(report: dict[str, Any]) -> None:
    keys = [(c["group"], c["category"], c["action"], c["hour"]) for c in report["counts"]]
    if len(keys) != len(set(keys)):
        raise IngestError(400, "report repeats a (group, category, action, hour) row")
    for cat, names in report["top_blocked"].items():
        if len({t["name"] for t in names}) != len(names):
            raise IngestError(400, f"report repeats a name under top_blocked/{cat}")


def _check_private(report: dict[str, Any], office_k: int) -> None:
    """A validly signed report can still carry one child's record (an old or altered
    appliance): refuse it unless every figure holds under the office's k and the floor."""
    k = report["k_anonymity"]
    if k < office_k:
        raise IngestError(400, f"report was built with k_anonymity={k}; this office requires "
                               f"at least {office_k}")
    for group, n in report["devices"].items():
        if n != FEWER_THAN_K and n < k:
            raise IngestError(400, f"devices/{group} = {n} is below k={k}: must be sent as "
                                   f"{FEWER_THAN_K!r}")
    for group, b in report["bypass"].items():
        if b["devices"] < k:
            raise IngestError(400, f"bypass/{group} has {b['devices']} devices, below k={k}")
    for cat, names in report["top_blocked"].items():
        for t in names:
            if t["devices"] < k:
                raise IngestError(400, f"top_blocked/{cat}/{t['name']} has {t['devices']}"
                                       f" devices, below k={k}")
            if not publishable_name(t["name"]):
                raise IngestError(400, f"top_blocked/{cat}/{t['name']} is a local or "
                                       "device name; it must not leave the school")


def _by_hour(counts: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[int]]:
    """Per (group, category, action): 24 hourly counts and, last, the rest of the day
    (rows the appliance rolled up from hours to the day to reach k devices)."""
    out: dict[tuple[str, str, str], list[int]] = {}
    for c in counts:
        hour = 24 if c["hour"] is None else c["hour"]
        out.setdefault((c["group"], c["category"], c["action"]), [0] * 25)[hour] += c["n"]
    return out


def _store(storage: Storage, school_id: str, nonce: str, ts: int, report: dict[str, Any],
           body: bytes, now: datetime) -> str:
    day = report["day"]
    with storage.transaction() as tx:
        use_nonce(tx, school_id, nonce, ts, now)
        h, lists = report["health"], report["lists"]
        inserted = tx.execute(
            "INSERT INTO reports (school_id, day, received_at, schema_version, app_version,"
            " list_version, list_updated_at, uptime_s, events_dropped, upstream_failures,"
            " size_gz, body_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (school_id, day) DO NOTHING",
            [school_id, day, now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             report["schema_version"], h["version"], lists["current_version"],
             lists["updated_at"], h["uptime_s"], h["events_dropped"], h["upstream_failures"],
             len(body), hashlib.sha256(body).hexdigest()])
        if inserted == 0:
            return "duplicate"  # already have this day: acknowledged, never counted twice
        # The feed versions the school runs (signed, in its report): the feeds page shows who
        # is behind. An older day arriving late never moves a school back.
        for kind, version in (lists.get("feeds") or {}).items():
            tx.execute("INSERT INTO feed_pulls (school_id, kind, version, pulled_at)"
                       " VALUES (?, ?, ?, ?) ON CONFLICT (school_id, kind) DO UPDATE SET"
                       " version = excluded.version, pulled_at = excluded.pulled_at"
                       " WHERE excluded.version > feed_pulls.version",
                       [school_id, kind, version, now.astimezone(UTC).strftime(
                           "%Y-%m-%dT%H:%M:%SZ")])
        tx.executemany(
            "INSERT INTO report_counts (school_id, day, grp, category, action, n, hours)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(school_id, day, g, c, a, sum(hours), ",".join(map(str, hours)))
             for (g, c, a), hours in _by_hour(report["counts"]).items()])
        tx.executemany(
            "INSERT INTO report_top (school_id, day, category, name, devices, hits)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(school_id, day, cat, t["name"], t["devices"], t["hits"])
             for cat, ts_ in report["top_blocked"].items() for t in ts_])
        tx.executemany(
            "INSERT INTO report_devices (school_id, day, grp, devices, below_k)"
            " VALUES (?, ?, ?, ?, ?)",
            [(school_id, day, g, 0 if n == FEWER_THAN_K else n, int(n == FEWER_THAN_K))
             for g, n in report["devices"].items()])
        tx.executemany(
            "INSERT INTO report_bypass (school_id, day, grp, attempts, devices)"
            " VALUES (?, ?, ?, ?, ?)",
            [(school_id, day, g, b["attempts"], b["devices"]) for g, b in report["bypass"].items()])
    return "stored"
