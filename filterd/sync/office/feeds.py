"""The office's side of the feeds: its own signing key, publishing versions, serving them.

The office signs every feed version with its own Ed25519 key (created once,
0600, beside the office database). That key is the office's, not a school's:
appliances hold only its public half, learned at enrolment. Versions only go
up, one per publish; the API serves the latest with an ETag `"v<version>"`, so
an appliance that was offline for several versions catches up in one pull.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filterd.sync.feed import KINDS, MAX_BYTES, Feed, FeedError, Notice, key_id, seal
from filterd.sync.office.storage import Storage

KEY_FILE = "feed-signing.key"


def _load_or_create_key(office_dir: Path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        load_pem_private_key,
    )

    path = Path(office_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise FeedError(f"{path}: not an Ed25519 private key")
    return key


def office_public_raw(office_dir: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _load_or_create_key(office_dir).public_key().public_bytes(Encoding.Raw,
                                                                     PublicFormat.Raw)


def office_public_hex(office_dir: Path) -> str:
    """The office's feed key as appliances store it (`<data_dir>/office-key.pub`)."""
    return office_public_raw(office_dir).hex()


@dataclass(frozen=True, slots=True)
class Published:
    kind: str
    version: int
    issued_at: str
    entries: int
    envelope: bytes


class FeedPublisher:
    """Publish and read feed versions in the office database."""

    def __init__(self, storage: Storage, office_dir: Path) -> None:
        self.storage = storage
        self.office_dir = Path(office_dir)

    def key_id(self) -> str:
        return key_id(office_public_raw(self.office_dir))

    def latest(self, kind: str) -> Published | None:
        rows = self.storage.query(
            "SELECT kind, version, issued_at, entries, envelope FROM feeds WHERE kind = ?"
            " ORDER BY version DESC LIMIT 1", (kind,))
        if not rows:
            return None
        k, v, at, n, env = rows[0]
        return Published(k, int(v), at, int(n), bytes(env.encode() if isinstance(env, str)
                                                      else env))

    def notices(self) -> tuple[Notice, ...]:
        """The notices of the latest notices version (newest first)."""
        p = self.latest("notices")
        if p is None:
            return ()
        from filterd.sync.feed import open_envelope

        return open_envelope(p.envelope, office_public_raw(self.office_dir)).notices

    def names(self, kind: str) -> tuple[str, ...]:
        """The names of the latest version (to add to or remove from it)."""
        p = self.latest(kind)
        if p is None:
            return ()
        from filterd.sync.feed import open_envelope

        return open_envelope(p.envelope, office_public_raw(self.office_dir)).entries

    def publish(self, kind: str, names: list[str] | tuple[str, ...] = (), *,
                notices: list[Notice] | tuple[Notice, ...] = (), scope: str = "") -> Published:
        """Sign and store the next version of `kind` holding exactly `names` (or `notices`)."""
        if kind not in KINDS:
            raise FeedError(f"unknown feed {kind!r} (known: {', '.join(KINDS)})")
        key = _load_or_create_key(self.office_dir)
        with self.storage.transaction() as tx:
            rows = tx.query("SELECT MAX(version) FROM feeds WHERE kind = ?", (kind,))
            version = int(rows[0][0] or 0) + 1
            feed = Feed.build(kind, version, list(names), notices=notices, scope=scope)
            envelope = seal(feed, key)
            if len(envelope) > MAX_BYTES:
                raise FeedError(f"feed {kind} would be {len(envelope)} bytes "
                                f"(appliances accept at most {MAX_BYTES})")
            tx.execute("INSERT INTO feeds (kind, version, issued_at, entries, envelope)"
                       " VALUES (?, ?, ?, ?, ?)",
                       (kind, version, feed.issued_at, len(feed.entries) or len(feed.notices),
                        envelope.decode()))
        return Published(kind, version, feed.issued_at, len(feed.entries) or len(feed.notices),
                         envelope)

    def add(self, kind: str, names: list[str], *, scope: str = "") -> Published:
        """The next version: the latest's names plus `names`."""
        return self.publish(kind, sorted(set(self.names(kind)) | set(names)), scope=scope)

    def remove(self, kind: str, names: list[str], *, scope: str = "") -> Published:
        return self.publish(kind, sorted(set(self.names(kind)) - set(names)), scope=scope)

    def record_pull(self, school_id: str, kind: str, version: int) -> None:
        """Note which version an enrolled school fetched (unknown ids are ignored)."""
        if self.storage.school(school_id) is None:
            return
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.storage.transaction() as tx:
            tx.execute("DELETE FROM feed_pulls WHERE school_id = ? AND kind = ?",
                       (school_id, kind))
            tx.execute("INSERT INTO feed_pulls (school_id, kind, version, pulled_at)"
                       " VALUES (?, ?, ?, ?)", (school_id, kind, version, at))

    def pulls(self) -> dict[str, dict[str, tuple[int, str]]]:
        """school id -> kind -> (version fetched, when)."""
        out: dict[str, dict[str, tuple[int, str]]] = {}
        for school, kind, version, at in self.storage.query(
                "SELECT school_id, kind, version, pulled_at FROM feed_pulls"):
            out.setdefault(school, {})[kind] = (int(version), at)
        return out
