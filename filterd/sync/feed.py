"""Signed feeds from the education office: the value, its wire form, and its check.

The office publishes, for its schools, a few feeds: the protected list (illegal
content named by the authorities), district/province-wide deny and allow
additions, education allowlist additions, and notices for the schools' IT staff.
Each version is one JSON document, signed by the office's Ed25519 key:

    {"format": "filterd-feed-v1",
     "payload": "<base64 of the canonical JSON of the feed>",
     "key": "<key id: first 16 hex of sha256(public key)>",
     "signature": "<base64 Ed25519 signature over the payload bytes>"}

The payload is what the appliance keeps and reads; the envelope is what it
stores on disk, so the last good version can be checked again at any time.
Appliances never accept an older version than the one they run (a replayed
feed cannot roll back the protected list), and refuse anything larger than
MAX_BYTES before parsing it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from filterd.errors import FilterdError
from filterd.lists.normalize import normalize_name

FORMAT = "filterd-feed-v1"
MAX_BYTES = 8 * 1024 * 1024      # a national protected list is ~100k names, ~3 MB signed
MAX_ENTRIES = 200_000
MAX_NOTICES = 100
MAX_NOTICE_TEXT = 4000

# The feeds an office can publish, and what each one does on the appliance.
KINDS = ("protected", "deny", "allow", "education", "notices")
DOMAIN_KINDS = ("protected", "deny", "allow", "education")


class FeedError(FilterdError):
    """A feed document is malformed, too large, or not what it says it is."""


class FeedSignatureError(FeedError):
    """A feed's signature does not verify with the office key the appliance enrolled with."""


class FeedVersionError(FeedError):
    """A feed version is not newer than the one the appliance already runs."""


@dataclass(frozen=True, slots=True)
class Notice:
    id: str
    title: str
    body: str
    issued_at: str

    def __post_init__(self) -> None:
        for name in ("id", "title", "issued_at"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip() or len(v) > 200:
                raise FeedError(f"notice {name}: expected a short text")
        if not isinstance(self.body, str) or len(self.body) > MAX_NOTICE_TEXT:
            raise FeedError(f"notice {self.id}: body too long (at most {MAX_NOTICE_TEXT})")


@dataclass(frozen=True, slots=True)
class Feed:
    """One version of one feed; validated in the constructor, never changed."""

    kind: str
    version: int
    issued_at: str                    # ISO 8601 UTC, as the office's clock saw it
    scope: str = ""                   # e.g. "Sở GD&ĐT Hà Nội" (words for the admin page)
    entries: tuple[str, ...] = ()     # normalized domain names (domain kinds)
    notices: tuple[Notice, ...] = ()  # notices kind
    reasons: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FeedError(f"unknown feed {self.kind!r} (known: {', '.join(KINDS)})")
        if isinstance(self.version, bool) or not isinstance(self.version, int) \
                or not 0 < self.version < 2**53:
            raise FeedError(f"feed {self.kind}: version must be a positive integer")
        try:
            datetime.strptime(self.issued_at, "%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError) as exc:
            raise FeedError(f"feed {self.kind}: issued_at must be YYYY-MM-DDTHH:MM:SSZ") from exc
        if len(self.entries) > MAX_ENTRIES:
            raise FeedError(f"feed {self.kind}: {len(self.entries)} entries "
                            f"(at most {MAX_ENTRIES})")
        if self.kind == "notices" and self.entries:
            raise FeedError("the notices feed carries notices, not domain names")
        if self.kind != "notices" and self.notices:
            raise FeedError(f"feed {self.kind} carries domain names, not notices")
        if len(self.notices) > MAX_NOTICES:
            raise FeedError(f"at most {MAX_NOTICES} notices")

    @classmethod
    def build(cls, kind: str, version: int, names: list[str] | tuple[str, ...] = (), *,
              notices: list[Notice] | tuple[Notice, ...] = (), scope: str = "",
              issued_at: datetime | None = None) -> Feed:
        """A feed from raw names (normalized, deduplicated, sorted; bad names refused)."""
        clean: set[str] = set()
        for raw in names:
            name = normalize_name(raw)
            if name is None:
                raise FeedError(f"feed {kind}: not a domain name: {raw!r}")
            clean.add(name)
        at = (issued_at or datetime.now(UTC)).astimezone(UTC)
        return cls(kind, version, at.strftime("%Y-%m-%dT%H:%M:%SZ"), scope,
                   tuple(sorted(clean)), tuple(notices))

    def payload(self) -> bytes:
        """The canonical bytes that are signed (sorted keys, no spaces, UTF-8)."""
        doc: dict[str, Any] = {"feed": self.kind, "version": self.version,
                               "issued_at": self.issued_at, "scope": self.scope}
        if self.kind == "notices":
            doc["notices"] = [{"id": n.id, "title": n.title, "body": n.body,
                               "issued_at": n.issued_at} for n in self.notices]
        else:
            doc["entries"] = list(self.entries)
        return json.dumps(doc, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, data: bytes) -> Feed:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FeedError(f"feed payload is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise FeedError("feed payload: expected a JSON object")
        kind = doc.get("feed")
        entries = doc.get("entries", [])
        raw_notices = doc.get("notices", [])
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise FeedError("feed entries: expected a list of names")
        if not isinstance(raw_notices, list) or not all(isinstance(n, dict)
                                                        for n in raw_notices):
            raise FeedError("feed notices: expected a list of objects")
        names: list[str] = []
        for raw in entries:
            name = normalize_name(raw)
            if name is None or name != raw:
                raise FeedError(f"feed {kind}: not a normalized domain name: {raw[:80]!r}")
            names.append(name)
        try:
            notices = tuple(Notice(str(n.get("id", "")), str(n.get("title", "")),
                                   str(n.get("body", "")), str(n.get("issued_at", "")))
                            for n in raw_notices)
        except FeedError:
            raise
        scope = doc.get("scope", "")
        if not isinstance(scope, str) or len(scope) > 200:
            raise FeedError("feed scope: expected a short text")
        return cls(kind, doc.get("version"), doc.get("issued_at"), scope, tuple(names),
                   notices)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise FeedError(f"feed {what}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise FeedError(f"feed {what}: not base64") from exc


def seal(feed: Feed, private_key: Any) -> bytes:
    """The signed envelope of `feed` (an Ed25519PrivateKey from `cryptography`)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    payload = feed.payload()
    pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return json.dumps({"format": FORMAT, "key": key_id(pub), "payload": _b64(payload),
                       "signature": _b64(private_key.sign(payload))},
                      separators=(",", ":")).encode()


def open_envelope(data: bytes, public_raw: bytes, *, expect_kind: str | None = None) -> Feed:
    """Check a signed envelope with the office's public key and return its feed.

    Raises FeedError (malformed, too large, wrong feed) or FeedSignatureError.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if len(data) > MAX_BYTES:
        raise FeedError(f"feed too large: {len(data)} bytes (at most {MAX_BYTES})")
    try:
        env = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedError(f"feed is not a signed feed document: {exc}") from exc
    if not isinstance(env, dict) or env.get("format") != FORMAT:
        raise FeedError(f"not a {FORMAT} document")
    payload = _unb64(env.get("payload"), "payload")
    signature = _unb64(env.get("signature"), "signature")
    if env.get("key") != key_id(public_raw):
        raise FeedSignatureError(f"feed signed with key {str(env.get('key'))[:32]!r}, not the "
                                 f"office key this appliance enrolled with "
                                 f"({key_id(public_raw)})")
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, payload)
    except (InvalidSignature, ValueError) as exc:
        raise FeedSignatureError("feed signature does not verify with the office key") from exc
    feed = Feed.from_payload(payload)
    if expect_kind is not None and feed.kind != expect_kind:
        raise FeedError(f"asked for feed {expect_kind}, got feed {feed.kind}")
    return feed
