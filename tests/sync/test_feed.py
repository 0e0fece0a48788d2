"""The signed feed format: canonical payload, Ed25519 envelope, refusals."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from filterd.sync.feed import (
    MAX_BYTES,
    Feed,
    FeedError,
    FeedSignatureError,
    Notice,
    open_envelope,
    seal,
)

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_round_trip_normalizes_and_sorts(key):
    feed = Feed.build("protected", 3, ["B.example.COM", "a.example", "Bücher.example",
                                       "a.example"], issued_at=AT)
    assert feed.entries == ("a.example", "b.example.com", "xn--bcher-kva.example")
    back = open_envelope(seal(feed, key), _pub(key), expect_kind="protected")
    assert back == feed
    assert back.issued_at == "2026-12-01T08:00:00Z"


def test_notices_round_trip(key):
    n = Notice("n1", "Cập nhật danh sách", "Sở đã bổ sung 12 trang.", "2026-12-01T08:00:00Z")
    feed = Feed.build("notices", 1, notices=[n], scope="Sở GD&ĐT Hà Nội", issued_at=AT)
    assert open_envelope(seal(feed, key), _pub(key)).notices == (n,)


@pytest.mark.parametrize("names", [["not a name"], ["exa mple.com"], [""], ["a..b"]])
def test_bad_names_refused(names):
    with pytest.raises(FeedError, match="not a domain name"):
        Feed.build("deny", 1, names)


def test_tampered_payload_refused(key):
    env = json.loads(seal(Feed.build("protected", 1, ["bad.example"]), key))
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["entries"] = []          # someone on the path empties the protected list
    env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(FeedSignatureError):
        open_envelope(json.dumps(env).encode(), _pub(key))


def test_other_key_refused(key):
    other = Ed25519PrivateKey.generate()
    with pytest.raises(FeedSignatureError, match="not the office key"):
        open_envelope(seal(Feed.build("deny", 1, ["x.example"]), other), _pub(key))


def test_same_key_id_wrong_signature_refused(key):
    env = json.loads(seal(Feed.build("deny", 1, ["x.example"]), key))
    env["signature"] = base64.b64encode(b"\0" * 64).decode()
    with pytest.raises(FeedSignatureError, match="does not verify"):
        open_envelope(json.dumps(env).encode(), _pub(key))


def test_oversized_refused_before_parsing(key):
    with pytest.raises(FeedError, match="too large"):
        open_envelope(b"{" + b" " * MAX_BYTES + b"}", _pub(key))


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b'{"format": "other"}',
                                  b'{"format": "filterd-feed-v1", "payload": 3}'])
def test_malformed_refused(key, data):
    with pytest.raises(FeedError):
        open_envelope(data, _pub(key))


def test_wrong_kind_refused(key):
    with pytest.raises(FeedError, match="asked for feed protected"):
        open_envelope(seal(Feed.build("allow", 1, ["x.example"]), key), _pub(key),
                      expect_kind="protected")


@pytest.mark.parametrize("version", [0, -1, True, 2**53])
def test_version_must_be_positive(version):
    with pytest.raises(FeedError, match="version"):
        Feed("deny", version, "2026-12-01T08:00:00Z")


def test_unknown_kind():
    with pytest.raises(FeedError, match="unknown feed"):
        Feed("everything", 1, "2026-12-01T08:00:00Z")
