"""Pull the office's signed feeds: conditional GET, verify, never older, keep the last good.

`FeedStore` is the appliance's copy: one signed envelope per feed under
`<data_dir>/feeds/<kind>.json` (checked again on every read, so a file edited
by hand is refused like a tampered download) and a status file saying, per
feed, which version runs, when it was checked and the last error in words.

`pull_feeds` asks the office for each feed with `If-None-Match: "v<version>"`,
reads at most MAX_BYTES, verifies the Ed25519 signature with the office key
the appliance enrolled with, refuses any version not newer than the one it
has, and only then replaces the file atomically. Any failure leaves the last
good version in place. The caller asks the daemon to reload when a feed changed.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filterd.errors import FilterdError
from filterd.sync.feed import (
    KINDS,
    MAX_BYTES,
    Feed,
    FeedError,
    FeedVersionError,
    open_envelope,
)
from filterd.sync.uploader import check_office_url

FEED_PATH = "/api/v1/feeds/"


class OfficeKeyError(FilterdError):
    """The office's public key (learned at enrolment) is missing or malformed."""


def read_office_key(path: Path) -> bytes:
    """The office's Ed25519 public key: 64 hex characters (or raw 32 bytes) in a file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise OfficeKeyError(f"{path}: cannot read the office key: {exc.strerror} (enrol the "
                             "appliance with the office first)") from exc
    text = data.strip()
    if len(data) == 32 and not all(c in b"0123456789abcdefABCDEF" for c in data):
        return data
    try:
        raw = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise OfficeKeyError(f"{path}: not an office key (expected 64 hex characters)") from exc
    if len(raw) != 32:
        raise OfficeKeyError(f"{path}: not an office key (expected 64 hex characters)")
    return raw


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class FeedStatus:
    kind: str
    version: int | None = None
    issued_at: str | None = None
    checked_at: str | None = None     # last time the office was asked (UTC)
    changed_at: str | None = None     # when the running version arrived (UTC)
    ok_at: str | None = None          # the last time the office answered and all was well
    error: str | None = None          # the last failure, in words; None when the last pull worked


class FeedStore:
    """The verified feeds on this appliance, one signed file each."""

    def __init__(self, directory: Path, office_key: bytes) -> None:
        self.dir = Path(directory)
        self.office_key = office_key

    def path(self, kind: str) -> Path:
        return self.dir / f"{kind}.json"

    @property
    def status_file(self) -> Path:
        return self.dir / "status.json"

    def current(self, kind: str) -> Feed | None:
        """The feed on disk, verified again; None if there is none (FeedError if it is bad)."""
        p = self.path(kind)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        return open_envelope(data, self.office_key, expect_kind=kind)

    def install(self, kind: str, envelope: bytes) -> Feed:
        """Verify `envelope` and make it the running version; refuse anything not newer."""
        feed = open_envelope(envelope, self.office_key, expect_kind=kind)
        try:
            have = self.current(kind)
        except FeedError:
            have = None      # a damaged copy on disk may be replaced by any good version
        if have is not None and feed.version <= have.version:
            raise FeedVersionError(f"feed {kind}: version {feed.version} is not newer than "
                                   f"the running version {have.version}")
        _atomic_write(self.path(kind), envelope)
        return feed

    def statuses(self) -> dict[str, FeedStatus]:
        try:
            raw = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            raw = {}
        out = {}
        for kind in KINDS:
            entry = raw.get(kind) if isinstance(raw, dict) else None
            fields = {k: entry.get(k) for k in FeedStatus.__dataclass_fields__
                      if k != "kind"} if isinstance(entry, dict) else {}
            out[kind] = FeedStatus(kind, **fields)
        return out

    def save_statuses(self, statuses: dict[str, FeedStatus]) -> None:
        body = {k: {f: v for f, v in asdict(s).items() if f != "kind"}
                for k, s in statuses.items()}
        _atomic_write(self.status_file, json.dumps(body, indent=1, sort_keys=True).encode())

    def versions(self) -> dict[str, int]:
        """kind -> running version, for the daily report."""
        out = {}
        for kind in KINDS:
            try:
                f = self.current(kind)
            except FeedError:
                f = None
            if f is not None:
                out[kind] = f.version
        return out


@dataclass(frozen=True, slots=True)
class PullOutcome:
    kind: str
    result: str            # "updated" | "unchanged" | "refused" | "unreachable"
    version: int | None
    message: str = ""


Fetch = Callable[[str, dict[str, str]], tuple[int, bytes]]


def http_fetch(timeout: float = 30.0) -> Fetch:
    """GET with headers; (status, body) with the body read to at most MAX_BYTES + 1."""

    def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        req = urllib.request.Request(url, headers=headers, method="GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(4096)

    return fetch


def pull_feeds(store: FeedStore, office_url: str, school_id: str, *,
               kinds: Iterable[str] = KINDS, fetch: Fetch | None = None,
               now: datetime | None = None) -> list[PullOutcome]:
    """Ask the office for every feed; install what is newer and verifies; keep the rest."""
    base = check_office_url(office_url) + FEED_PATH
    fetch = fetch or http_fetch()
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    statuses = store.statuses()
    outcomes = []
    for kind in kinds:
        st = statuses[kind]
        try:
            have = store.current(kind)
        except FeedError:
            have = None
        headers = {"User-Agent": "filterd-feeds/1", "X-Filterd-School": school_id}
        if have is not None:
            headers["If-None-Match"] = f'"v{have.version}"'
        outcome = _pull_one(store, base + kind, kind, have, headers, fetch)
        st.checked_at = stamp
        if outcome.result in ("updated", "unchanged"):
            st.ok_at = stamp
        if outcome.result == "updated":
            st.version, st.changed_at, st.error = outcome.version, stamp, None
            st.issued_at = store.current(kind).issued_at  # type: ignore[union-attr]
        elif outcome.result == "unchanged":
            st.error = None
            if have is not None:
                st.version, st.issued_at = have.version, have.issued_at
        else:
            st.error = outcome.message
        outcomes.append(outcome)
    store.save_statuses(statuses)
    return outcomes


def _pull_one(store: FeedStore, url: str, kind: str, have: Feed | None,
              headers: dict[str, str], fetch: Fetch) -> PullOutcome:
    version = have.version if have is not None else None
    try:
        status, body = fetch(url, headers)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return PullOutcome(kind, "unreachable", version, f"office unreachable: {reason}")
    if status == 304:
        return PullOutcome(kind, "unchanged", version)
    if status == 404:
        return PullOutcome(kind, "unchanged", version, "the office publishes no such feed")
    if status != 200:
        return PullOutcome(kind, "unreachable" if status >= 500 else "refused", version,
                           f"office answered {status}")
    if len(body) > MAX_BYTES:
        return PullOutcome(kind, "refused", version,
                           f"feed larger than {MAX_BYTES} bytes: refused, last good kept")
    try:
        feed = open_envelope(body, store.office_key, expect_kind=kind)
        if have is not None and feed.version == have.version:
            return PullOutcome(kind, "unchanged", version)
        feed = store.install(kind, body)
    except FeedError as exc:   # tampered, malformed, wrong feed, or older than what runs
        return PullOutcome(kind, "refused", version, f"{exc}; last good kept")
    return PullOutcome(kind, "updated", feed.version)


def feed_entries(store: FeedStore) -> dict[str, tuple[tuple[str, ...], Any]]:
    """kind -> (names, feed) for every domain feed on disk that verifies (for the engine)."""
    out = {}
    for kind in KINDS:
        if kind == "notices":
            continue
        try:
            f = store.current(kind)
        except FeedError:
            f = None
        if f is not None:
            out[kind] = (f.entries, f)
    return out


def load_feed_tables(feeds_dir: Path, key_file: Path | None):
    """The verified domain feeds on disk as the engine's FeedTables (NO_FEEDS if none).

    A feed file that no longer verifies (edited by hand, a damaged card) raises
    ConfigError naming it: a reload then keeps the running engine, and a start
    fails loudly rather than running without the protected feed.
    """
    from filterd.errors import ConfigError
    from filterd.policy.feeds import FEED_KINDS, NO_FEEDS, FeedTables, feed_table

    present = [k for k in FEED_KINDS if (Path(feeds_dir) / f"{k}.json").exists()]
    if not present:
        return NO_FEEDS
    if key_file is None or not Path(key_file).exists():
        raise ConfigError(f"feeds are installed in {feeds_dir} but the office key "
                          f"{key_file} is missing: enrol the appliance again",
                          file=str(key_file), key="sync.office_key_file")
    try:
        store = FeedStore(feeds_dir, read_office_key(Path(key_file)))
    except OfficeKeyError as exc:
        raise ConfigError(str(exc), file=str(key_file), key="sync.office_key_file") from exc
    tables = {}
    for kind in present:
        try:
            feed = store.current(kind)
        except FeedError as exc:
            raise ConfigError(f"the office feed no longer verifies: {exc}",
                              file=str(store.path(kind))) from exc
        if feed is not None:
            tables[kind] = feed_table(kind, feed.entries, feed.version)
    return FeedTables(**tables)


def hours_since_ok(feeds_dir: Path, now: datetime | None = None) -> float | None:
    """Hours since the office last answered a pull without a problem; None when this
    appliance has no feed yet (not enrolled, or the office publishes none)."""
    try:
        raw = json.loads((Path(feeds_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    have = [v for v in raw.values() if isinstance(v, dict) and v.get("version") is not None]
    if not have:
        return None
    stamps = [v.get("ok_at") for v in raw.values() if isinstance(v, dict) and v.get("ok_at")]
    now = now or datetime.now(UTC)
    if not stamps:
        return float("inf")
    last = max(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for t in stamps)
    return (now - last).total_seconds() / 3600
