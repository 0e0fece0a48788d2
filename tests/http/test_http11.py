from __future__ import annotations

import pytest

from filterd.http.http11 import HttpError, normalize_host, parse_head, response, split_absolute


def test_parse_head():
    req = parse_head(b"GET http://a.test/x?y HTTP/1.1\r\nHost: a.test\r\nX-A:  b \r\n\r\n")
    assert (req.method, req.target, req.version) == ("GET", "http://a.test/x?y", "HTTP/1.1")
    assert req.header("x-a") == "b" and req.keep_alive and req.content_length() == 0
    assert not parse_head(b"GET / HTTP/1.0\r\n\r\n").keep_alive


@pytest.mark.parametrize("raw", [
    b"GET  / HTTP/1.1\r\n\r\n", b"GET / HTTP/2\r\n\r\n", b"G\x00T / HTTP/1.1\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n: x\r\n\r\n", b"\r\n\r\n",
])
def test_bad_heads(raw):
    with pytest.raises(HttpError):
        parse_head(raw)


@pytest.mark.parametrize("value,want", [
    ("Example.TEST:8080", "example.test"), ("a.test.", "a.test"), ("[::1]:80", "::1"),
    ("<script>", None), ("", None), ("a b", None),
])
def test_normalize_host(value, want):
    assert normalize_host(value) == want


def test_split_absolute():
    assert split_absolute("http://A.test:81/p?q=1") == ("http", "a.test", 81, "/p?q=1")
    for bad in ("https://a.test/", "http:///x", "http://a.test:99999/"):
        with pytest.raises(HttpError):
            split_absolute(bad)


def test_response_framing():
    raw = response(403, b"abc", headers=[("X-Y", "z")], keep_alive=True)
    assert raw.startswith(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\nConnection: keep-alive")
    assert raw.endswith(b"X-Y: z\r\n\r\nabc")
