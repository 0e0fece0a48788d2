from __future__ import annotations

import time

import pytest

from filterd.errors import ListError
from filterd.lists.fetch import fetch
from tests.lists.http_server import list_mirror


def test_fetch_and_conditional_304() -> None:
    with list_mirror() as m:
        m.files["a.txt"] = b"example.com\n"
        first = fetch(m.url("a.txt"), timeout=5)
        assert first.data == b"example.com\n" and first.etag
        again = fetch(m.url("a.txt"), etag=first.etag, timeout=5)
        assert again.not_modified and again.etag == first.etag
        assert m.requests[-1] == ("a.txt", first.etag)


def test_truncated_download_is_an_error() -> None:
    with list_mirror() as m:
        m.files["big.txt"] = b"x.example.com\n" * 10_000
        m.truncate.add("big.txt")
        with pytest.raises(ListError, match="truncated") as err:
            fetch(m.url("big.txt"), timeout=5, source="s")
        assert err.value.source == "s"


def test_size_cap() -> None:
    with list_mirror() as m:
        m.files["big.txt"] = b"x" * 5000
        with pytest.raises(ListError, match="cap"):
            fetch(m.url("big.txt"), timeout=5, max_bytes=1000)


def test_http_errors_and_unreachable() -> None:
    with list_mirror() as m:
        m.status["gone.txt"] = 503
        with pytest.raises(ListError, match="HTTP 503"):
            fetch(m.url("gone.txt"), timeout=5)
        with pytest.raises(ListError, match="HTTP 404"):
            fetch(m.url("missing.txt"), timeout=5)
        closed = m.base
    with pytest.raises(ListError, match="cannot reach"):
        fetch(closed + "/a.txt", timeout=2)


def test_gzip_content_encoding_is_undone() -> None:
    with list_mirror() as m:
        m.files["a.txt"] = b"example.com\n" * 100
        m.gzipped.add("a.txt")
        assert fetch(m.url("a.txt"), timeout=5).data == b"example.com\n" * 100
        with pytest.raises(ListError, match="cap"):
            fetch(m.url("a.txt"), timeout=5, max_bytes=500)


@pytest.mark.parametrize("when", ["", "body"])
def test_stalled_server_times_out(when: str) -> None:
    """A server that stops sending (before the headers, or mid-body) is a clear error."""
    with list_mirror() as m:
        m.files["slow.txt"] = b"x.example.com\n" * 10_000
        m.stall["slow.txt"] = when
        t0 = time.monotonic()
        with pytest.raises(ListError, match="timed out") as err:
            fetch(m.url("slow.txt"), timeout=1, source="s")
        assert time.monotonic() - t0 < 10 and err.value.source == "s"
