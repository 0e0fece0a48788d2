from __future__ import annotations

import contextlib
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.http.clienthello import ClientHelloError, build, looks_like_tls, parse

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(label, min_size=1, max_size=5).map(".".join)


@given(
    sni=hostnames,
    alpn=st.lists(st.sampled_from(["h2", "http/1.1"]), max_size=2),
    record_size=st.integers(min_value=1, max_value=300),
    session_id=st.binary(max_size=32),
)
def test_round_trip_any_fragmentation(sni, alpn, record_size, session_id):
    data = build(sni, alpn=tuple(alpn), record_size=record_size, session_id=session_id)
    hello = parse(data)
    assert hello is not None
    assert hello.sni == sni
    assert hello.alpn == tuple(alpn)
    assert hello.size == len(data)


@settings(max_examples=50)
@given(sni=hostnames, record_size=st.integers(min_value=1, max_value=200))
def test_every_prefix_needs_more(sni, record_size):
    data = build(sni, record_size=record_size)
    for cut in range(len(data)):
        assert parse(data[:cut]) is None


@given(st.binary(max_size=600))
def test_random_bytes_never_crash(data):
    with contextlib.suppress(ClientHelloError):
        parse(data)


@given(sni=hostnames, flip=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_corrupted_hello_is_parsed_or_refused(sni, flip, value):
    data = bytearray(build(sni))
    data[flip % len(data)] = value
    with contextlib.suppress(ClientHelloError):
        parse(bytes(data))


def test_trailing_bytes_after_hello_are_ignored():
    data = build("example.com") + b"\x17\x03\x03\x00\x05hello"
    hello = parse(data)
    assert hello is not None and hello.sni == "example.com"
    assert hello.size == len(build("example.com"))


def test_no_sni_and_uppercase_and_trailing_dot():
    assert parse(build(None)).sni is None
    assert parse(build("WWW.Example.COM.")).sni == "www.example.com"


@pytest.mark.parametrize(
    "bad",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x00\x00",  # empty record
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # ServerHello, not ClientHello
        b"\x16\x03\x01\xff\xff" + b"\x00" * 10,  # record too large
        b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",  # handshake claims 16 MB
    ],
)
def test_not_a_client_hello(bad):
    with pytest.raises(ClientHelloError):
        parse(bad)


def test_hostile_server_name_refused():
    with pytest.raises(ClientHelloError):
        parse(build("evil.com\r\nx"))
    with pytest.raises(ClientHelloError):
        parse(build("a" * 70 + ".com"))


def test_real_openssl_client_hello():
    """The ClientHello Python's own TLS stack sends (via a memory BIO) parses."""
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="www.example.org")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    data = outgoing.read()
    assert looks_like_tls(data)
    hello = parse(data)
    assert hello.sni == "www.example.org"
    assert hello.alpn == ("h2", "http/1.1")
