"""The SNI relay with real clients (curl, Python ssl) on loopback."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time

import pytest

from filterd.http.clienthello import build
from filterd.http.relay_conn import TLS_ALERT_ACCESS_DENIED

pytestmark = pytest.mark.integration


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args], capture_output=True, timeout=timeout
    )


def test_allowed_http_forwarded(svc, upstreams):
    out = curl("-x", svc.proxy_url, "http://allowed.test/page")
    assert out.returncode == 0, out.stderr
    assert out.stdout == upstreams.page


def test_allowed_http_keepalive_and_chunked(svc, upstreams):
    out = curl(
        "-x",
        svc.proxy_url,
        "http://allowed.test/chunked",
        "http://allowed.test/page",
        "http://plain.test/echo?x=1",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"one,two,three" + upstreams.page)
    assert b'"path": "/echo?x=1"' in out.stdout
    assert b"Proxy-Connection" not in out.stdout


def test_blocked_http_shows_block_page_with_reason(svc):
    out = curl("-x", svc.proxy_url, "-w", "%{http_code}", "http://blocked.test/some/page")
    assert out.stdout.endswith(b"403")
    page = out.stdout.decode()
    assert 'lang="vi"' in page
    assert "Nội dung người lớn" in page  # the category in words
    assert "dành cho người lớn" in page  # child wording
    assert "111" in page
    ((decision, query, _),) = svc.sink.records
    assert decision.category == "adult" and query.path == "http" and query.url is None


def test_blocked_url_prefix_and_english(svc, upstreams):
    out = curl(
        "-x",
        svc.proxy_url,
        "-H",
        "Accept-Language: en-US,en;q=0.9",
        "http://allowed.test/bad/thing",
    )
    page = out.stdout.decode()
    assert 'lang="en"' in page and "Violence and hate" in page
    assert curl("-x", svc.proxy_url, "http://allowed.test/good").stdout == upstreams.page


def test_allowed_https_byte_identical_certificate_unchanged(svc, upstreams):
    via = curl(
        "-x", svc.proxy_url, "--cacert", str(upstreams.pki.ca_pem), "https://allowed.test/page"
    )
    assert via.returncode == 0, via.stderr
    direct = curl(
        "--cacert",
        str(upstreams.pki.ca_pem),
        "--resolve",
        f"allowed.test:{upstreams.https_port}:127.0.0.1",
        f"https://allowed.test:{upstreams.https_port}/page",
    )
    assert via.stdout == direct.stdout == upstreams.page
    # The client sees the upstream's own certificate (no interception).
    ctx = ssl.create_default_context(cafile=str(upstreams.pki.ca_pem))
    with socket.create_connection(svc.proxy, timeout=10) as raw:
        raw.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 200")
        with ctx.wrap_socket(raw, server_hostname="allowed.test") as tls:
            assert tls.getpeercert(binary_form=True) == upstreams.pki.cert_der
    assert svc.service.relay.stats.spliced >= 2
    assert svc.sink.records == []
    _wait_idle(svc)   # spliced connections end their tasks once both sides closed


def test_blocked_sni_refused_after_client_hello(svc, upstreams):
    out = curl("-x", svc.proxy_url, "--cacert", str(upstreams.pki.ca_pem), "https://casino.test/")
    assert out.returncode == 35, out  # TLS handshake failed: refused after the ClientHello
    ((decision, query, _),) = svc.sink.records
    assert query.path == "sni" and decision.category == "gambling" and query.url is None


def test_sni_checked_even_when_connect_host_is_allowed(svc):
    """Domain fronting the other way round: CONNECT says allowed, SNI says blocked."""
    with socket.create_connection(svc.proxy, timeout=10) as s:
        s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        s.sendall(build("blocked.test"))
        assert s.recv(100) == TLS_ALERT_ACCESS_DENIED
        assert s.recv(100) == b""


def test_client_hello_byte_by_byte(svc):
    with socket.create_connection(svc.proxy, timeout=10) as s:
        s.sendall(b"CONNECT casino.test:443 HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        for b in build("casino.test"):
            s.sendall(bytes([b]))
        assert s.recv(100) == TLS_ALERT_ACCESS_DENIED


def _wait_idle(svc, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end and svc.service.relay.stats.active:
        time.sleep(0.05)
    assert svc.service.relay.stats.active == 0
    assert not svc.service.relay._tasks


def test_unfinished_client_hello_times_out_without_leaks(svc):
    socks = []
    for _ in range(5):
        s = socket.create_connection(svc.proxy, timeout=10)
        s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
        s.recv(100)
        s.sendall(build("allowed.test")[:40])
        socks.append(s)
    for s in socks:
        assert s.recv(100) == b""  # closed by the proxy after hello_timeout (1 s in tests)
        s.close()
    _wait_idle(svc)
    assert svc.service.relay.stats.timeouts >= 5


def test_silent_client_and_partial_head_time_out(svc):
    a = socket.create_connection(svc.proxy, timeout=10)
    b = socket.create_connection(svc.proxy, timeout=10)
    b.sendall(b"GET http://allowed.test/ HTTP/1.1\r\nHost: allo")
    assert a.recv(10) == b"" and b.recv(10) == b""
    a.close()
    b.close()
    _wait_idle(svc)


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET http://allowed.test/ HTTP/9.9\r\n\r\n", b"400"),
        (b"GET http://allowed.test/ HTTP/1.1\r\nBad Header\r\n\r\n", b"400"),
        (b"CONNECT allowed.test:22 HTTP/1.1\r\n\r\n", b"403"),
        (b"CONNECT nohostport HTTP/1.1\r\n\r\n", b"400"),
        (b"GET ftp://allowed.test/ HTTP/1.1\r\n\r\n", b"400"),
        (
            b"GET http://allowed.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"400",
        ),
        (b"GET http://allowed.test/ HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", b"431"),
        (b"GET http://allowed.test/ HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"431"),
    ],
)
def test_malformed_requests_refused(svc, raw, status):
    with socket.create_connection(svc.proxy, timeout=10) as s:
        s.sendall(raw)
        reply = s.recv(200)
    assert reply.split(b" ")[1] == status
    _wait_idle(svc)


def test_not_tls_after_connect_is_closed(svc):
    with socket.create_connection(svc.proxy, timeout=10) as s:
        s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        assert s.recv(100) == b""
    assert svc.service.relay.stats.refused == 1


def test_pac_file_from_the_proxy_port(svc):
    out = curl(f"{svc.proxy_url}/proxy.pac")
    assert b"FindProxyForURL" in out.stdout
    assert f"PROXY 127.0.0.1:{svc.proxy[1]}".encode() in out.stdout


def test_half_close_is_forwarded_and_splice_ends(svc, upstreams):
    """The client half-closes after its request; the response still arrives; nothing leaks."""
    ctx = ssl.create_default_context(cafile=str(upstreams.pki.ca_pem))
    for _ in range(3):
        with socket.create_connection(svc.proxy, timeout=10) as raw:
            raw.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 200")
            tls = ctx.wrap_socket(raw, server_hostname="allowed.test")
            tls.sendall(b"GET /page HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            assert data.endswith(upstreams.page)
            tls.close()
    _wait_idle(svc)


def test_oversized_client_hello_refused(svc):
    """A record header announcing a huge handshake, then junk: refused, nothing forwarded."""
    with socket.create_connection(svc.proxy, timeout=10) as s:
        s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        s.sendall(b"\x16\x03\x01\xff\xff" + b"\x01" + b"\x00" * 70_000)
        assert s.recv(100) == b""
    _wait_idle(svc)
    assert svc.service.relay.stats.spliced == 0


def test_stalled_clients_do_not_hold_up_others(svc, upstreams):
    """While many clients sit on half a ClientHello, an allowed request goes through."""
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(svc.proxy, timeout=10)
            s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n" + build("x.test")[:20])
            socks.append(s)
        t = time.monotonic()
        out = curl("-x", svc.proxy_url, "--cacert", str(upstreams.pki.ca_pem),
                   "https://allowed.test/page")
        assert out.returncode == 0 and out.stdout == upstreams.page
        assert time.monotonic() - t < 5
    finally:
        for s in socks:
            s.close()
    _wait_idle(svc)


def test_transparent_listener_refuses_connections_that_were_not_redirected(svc):
    """Straight to the transparent port (no SO_ORIGINAL_DST): closed, never proxied."""
    server = svc.call(svc.service.relay.serve_transparent("127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        # Closed with our request unread: a reset is the same refusal as an EOF.
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(100) == b""
    _wait_idle(svc)
    assert svc.service.relay.stats.http_forwarded == 0


def test_close_ends_open_splices(tmp_path, upstreams, service_factory):
    """Shutdown (SIGTERM) while TLS connections are being spliced: close() returns and the
    clients see their connections end (a cancelled splice must still close both sides)."""
    run_service, stop_service = service_factory
    r = run_service(tmp_path, upstreams)
    ctx = ssl.create_default_context(cafile=str(upstreams.pki.ca_pem))
    conns = []
    try:
        for _ in range(3):
            raw = socket.create_connection(r.proxy, timeout=10)
            raw.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 200")
            conns.append(ctx.wrap_socket(raw, server_hostname="allowed.test"))
        assert r.service.relay.stats.active == 3
        r.call(r.service.close(), timeout=10)
        for tls in conns:
            with contextlib.suppress(OSError):
                assert tls.recv(100) == b""
    finally:
        for tls in conns:
            tls.close()
        r.loop.call_soon_threadsafe(r.loop.stop)
    assert not r.service.relay._tasks
    del stop_service


def test_connect_head_byte_by_byte_and_hello_without_waiting(svc, upstreams):
    """The explicit fast path: a CONNECT head in single bytes, then a client that sends its
    ClientHello together with the CONNECT (no wait for the 200) is still spliced intact."""
    ctx = ssl.create_default_context(cafile=str(upstreams.pki.ca_pem))
    with socket.create_connection(svc.proxy, timeout=10) as raw:
        for b in b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n":
            raw.sendall(bytes([b]))
        assert raw.recv(100).startswith(b"HTTP/1.1 200")
        with ctx.wrap_socket(raw, server_hostname="allowed.test") as tls:
            tls.sendall(b"GET /page HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    assert data.endswith(upstreams.page)
    with socket.create_connection(svc.proxy, timeout=10) as s:
        s.sendall(b"CONNECT casino.test:443 HTTP/1.1\r\n\r\n" + build("casino.test"))
        reply = b""
        while chunk := s.recv(100):
            reply += chunk
    assert reply == b"HTTP/1.1 200 Connection established\r\n\r\n" + TLS_ALERT_ACCESS_DENIED
    _wait_idle(svc)


def test_upstream_refused_closes_the_client(tmp_path, upstreams, service_factory):
    run_service, stop_service = service_factory
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()  # nothing listens there now
    r = run_service(tmp_path, upstreams,
                    upstream_overrides={"allowed.test:443": ("127.0.0.1", closed_port)})
    try:
        with socket.create_connection(r.proxy, timeout=10) as s:
            s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            s.sendall(build("allowed.test"))
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(100) == b""
        _wait_idle(r)
        assert r.service.relay.stats.spliced == 0
    finally:
        stop_service(r)
