"""`filterd run` against a real unbound: ECH removed per group, serve-stale (RFC 8767).

Groups by source address as in test_daemon.py: 127.0.0.2 THPT (filtered by name,
ECH removed), 127.0.0.3 staff (listed in dns.keep_ech_groups: ECH kept).
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound

from tests.test_daemon import STAFF, THPT, Daemon

pytestmark = pytest.mark.integration

# An ECHConfigList as a provider publishes it (the bytes need not be a real key here).
ECH = base64.b64encode(b"\x00\x08\xfe\x0d\x00\x04abcd").decode()
HTTPS_DATA = "\n".join([
    f'  local-data: "ech.test. 300 IN HTTPS 1 . alpn=h2,h3 ech={ECH} ipv4hint=192.0.2.30"',
    f'  local-data: "ech.test. 300 IN HTTPS 2 alt.ech.test. mandatory=alpn,ech alpn=h2 '
    f'port=8443 ech={ECH}"',
    f'  local-data: "_dns.resolver.test. 300 IN SVCB 1 dot.resolver.test. alpn=dot '
    f'port=853 ech={ECH}"',
])


def dig(daemon, source, *args):
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(daemon.port), "-b", source,
                          "+tries=1", "+time=3", *args], capture_output=True, text=True,
                         timeout=20)
    return out.stdout


def records(out, rtype):
    return sorted(line.split(rtype, 1)[1].strip() for line in out.splitlines()
                  if not line.startswith(";") and f"\tIN\t{rtype}\t" in line)


@pytest.fixture(scope="module")
def ech_daemon(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound-ech"), extra=HTTPS_DATA).start()
    d = Daemon(tmp_path_factory.mktemp("filterd-ech"), u.address,
               dns_extra="  keep_ech_groups: [giao_vien]\n").start()
    yield d, u
    d.stop()
    u.stop()


def test_dig_https_no_ech_for_a_filtered_group_rest_intact(ech_daemon):
    d, _u = ech_daemon
    for _ in range(3):   # the upstream answer, the cached one, the remembered (memo) one
        out = dig(d, THPT, "-t", "HTTPS", "ech.test")
        assert "status: NOERROR" in out, out
        assert records(out, "HTTPS") == [
            '1 . alpn="h2,h3" ipv4hint=192.0.2.30',
            '2 alt.ech.test. mandatory=alpn alpn="h2" port=8443'], out
    out = dig(d, THPT, "-t", "SVCB", "_dns.resolver.test")
    assert records(out, "SVCB") == ['1 dot.resolver.test. alpn="dot" port=853'], out


def test_dig_https_keeps_ech_for_a_group_not_filtered_by_name(ech_daemon):
    d, _u = ech_daemon
    for _ in range(2):
        out = dig(d, STAFF, "-t", "HTTPS", "ech.test")
        got = records(out, "HTTPS")
        assert len(got) == 2 and all(f"ech={ECH}" in r for r in got), out
    # ...and the filtered group still gets its own, stripped, copy from the cache.
    assert "ech=" not in dig(d, THPT, "-t", "HTTPS", "ech.test")


def test_unknown_group_in_keep_ech_groups_is_refused(tmp_path):
    d = Daemon(tmp_path, ("127.0.0.1", 9), dns_extra="  keep_ech_groups: [thpt, no_such]\n")
    out = subprocess.run([sys.executable, "-m", "filterd", "policy", "validate",
                          str(d.policy_dir), "--config", str(d.config)],
                         capture_output=True, text=True, env=d.env(), timeout=60)
    said = out.stdout + out.stderr
    assert out.returncode == 1, said
    assert "no_such" in said and "dns.keep_ech_groups" in said and "filterd.yaml" in said


def test_upstream_stopped_stale_answers_then_fresh_again(tmp_path):
    u = Unbound(tmp_path / "unbound").start()
    (tmp_path / "filterd").mkdir()
    d = Daemon(tmp_path / "filterd", u.address, dns_extra="  serve_stale_max: 600\n").start()
    try:
        out = dig(d, THPT, "short.test")     # unbound gives it TTL 2
        assert re.search(r"short\.test\.\s+2\s+IN\s+A\s+192\.0\.2\.20", out), out
        u.stop()
        time.sleep(2.5)                      # expired now
        out = dig(d, THPT, "short.test")
        assert "status: NOERROR" in out, out
        assert re.search(r"short\.test\.\s+30\s+IN\s+A\s+192\.0\.2\.20", out), out
        assert "EDE: 3 (Stale Answer)" in out, out
        # A name never seen before has nothing stale to give: SERVFAIL, not a made-up answer.
        assert "status: SERVFAIL" in dig(d, THPT, "other.test")
        u.start()                            # the same port again
        deadline = time.monotonic() + 20
        while True:
            out = dig(d, THPT, "short.test")
            if re.search(r"short\.test\.\s+[12]\s+IN\s+A", out) and "EDE" not in out:
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.5)
    finally:
        d.stop()
        u.stop()


# -- encrypted upstreams -------------------------------------------------------------------

@pytest.fixture(scope="module")
def dot_unbound(tmp_path_factory):
    from tlshelpers import encrypted_unbound, make_pki

    tmp = tmp_path_factory.mktemp("dot-unbound")
    pki = make_pki(tmp / "pki")
    u, tls_port, https_port = encrypted_unbound(tmp / "unbound", pki)
    yield u, tls_port, https_port, pki
    u.stop()


def encrypted_daemon(tmp, upstream_url, ca):
    d = Daemon(tmp, ("127.0.0.1", 9), dns_extra=f"  upstream_ca_file: {ca}\n")
    text = d.config.read_text()
    text = re.sub(r"  upstreams: \[.*\]\n", f"  upstreams: ['{upstream_url}']\n", text)
    d.config.write_text(text)
    return d.start_without_wait()


@pytest.mark.parametrize("scheme", ["tls", "https"])
def test_daemon_reaches_unbound_encrypted_and_refuses_a_wrong_certificate(
        tmp_path, dot_unbound, scheme):
    _u, tls_port, https_port, pki = dot_unbound
    port = tls_port if scheme == "tls" else https_port
    good = tmp_path / "good"
    good.mkdir()
    d = encrypted_daemon(good, f"{scheme}://127.0.0.1:{port}#dns.test", pki.ca)
    try:
        d.wait_ready()
        out = dig(d, THPT, "www.allowed.test")
        assert "status: NOERROR" in out and "192.0.2.11" in out, out
        assert "blocked.test" not in out
        assert "status: NXDOMAIN" not in dig(d, THPT, "other.test")
    finally:
        d.stop()
    bad = tmp_path / "bad"
    bad.mkdir()
    d = encrypted_daemon(bad, f"{scheme}://127.0.0.1:{port}#not-the-name.test", pki.ca)
    try:
        d.wait_ready()
        out = dig(d, THPT, "www.allowed.test")
        assert "status: SERVFAIL" in out and "192.0.2.11" not in out, out
        assert "EDE: 22" in out
        d.wait_for(lambda: "certificate not accepted" in d.logtext(), "no clear log line")
        assert "not-the-name.test" in d.logtext()
    finally:
        d.stop()


# -- serving DoT and DoH to the school's devices -------------------------------------------

@pytest.fixture(scope="module")
def encrypted_serving(tmp_path_factory, dot_unbound):
    from dnshelpers import free_port

    u = dot_unbound[0]
    tmp = tmp_path_factory.mktemp("filterd-doh")
    dot_port, doh_port = free_port(), free_port()
    d = Daemon(tmp, u.address, flush_interval=0.2, dns_extra=(
        f"  tls_listen: ['127.0.0.1:{dot_port}']\n"
        f"  https_listen: ['127.0.0.1:{doh_port}']\n"
        "  tls_names: [dns.school.test]\n")).start()
    ca = tmp / "var" / "ca" / "filterd-ca.pem"   # the school CA, made on first start
    yield d, dot_port, doh_port, ca
    d.stop()


def dot_ask(port, ca, name, source, rdtype="A", hostname="dns.school.test"):
    import ssl

    import dns.message
    import dns.query

    ctx = ssl.create_default_context(cafile=str(ca))
    q = dns.message.make_query(name, rdtype, use_edns=0)
    return dns.query.tls(q, "127.0.0.1", port=port, source=source, timeout=5,
                         ssl_context=ctx, server_hostname=hostname)


def doh_ask(port, ca, name, source, method="POST", http="--http2"):
    import dns.message

    q = dns.message.make_query(name, "A", use_edns=0)
    q.id = 0
    url = f"https://127.0.0.1:{port}/dns-query"
    args = ["curl", "-sS", "--fail", http, "--cacert", str(ca), "--interface", source,
            "--max-time", "10", "-o", "-", "-D", "/dev/stderr"]
    if method == "POST":
        args += ["-H", "content-type: application/dns-message", "--data-binary", "@-", url]
        out = subprocess.run(args, input=q.to_wire(), capture_output=True, timeout=20)
    else:
        param = base64.urlsafe_b64encode(q.to_wire()).rstrip(b"=").decode()
        out = subprocess.run([*args, f"{url}?dns={param}"], capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr.decode()
    headers = out.stderr.decode().lower()
    assert "content-type: application/dns-message" in headers, headers
    assert ("http/2 200" in headers) == (http == "--http2"), headers
    return dns.message.from_wire(out.stdout)


def verdict(msg):
    import dns.rcode

    addrs = sorted(r.address for rrset in msg.answer for r in rrset if hasattr(r, "address"))
    return dns.rcode.to_text(msg.rcode()), tuple(addrs)


CASES = [(THPT, "blocked.test"), (THPT, "allowed.test"), ("127.0.0.1", "blocked.test"),
         ("127.0.0.1", "adult-free.test"), (STAFF, "blocked.test"), (THPT, "protected.test")]


def test_dot_and_doh_clients_get_the_udp_verdicts_from_the_same_address(encrypted_serving):
    d, dot_port, doh_port, ca = encrypted_serving
    seen = set()
    for source, name in CASES:
        udp = verdict(d.ask(name, source=source))
        seen.add(udp)
        assert verdict(dot_ask(dot_port, ca, name, source)) == udp, (source, name)
        assert verdict(doh_ask(doh_port, ca, name, source)) == udp, (source, name)
        assert verdict(doh_ask(doh_port, ca, name, source, "GET", "--http1.1")) == udp
    # The cases really differ by group and name (a resolver ignoring the address would fail).
    assert ("NOERROR", ("10.0.0.1",)) in seen and ("NXDOMAIN", ()) in seen
    assert ("NOERROR", ("192.0.2.66",)) in seen and ("NOERROR", ("192.0.2.10",)) in seen


def test_dot_pipelines_many_queries_on_one_connection(encrypted_serving):
    import socket
    import ssl
    import struct

    import dns.message

    _d, dot_port, _doh_port, ca = encrypted_serving
    ctx = ssl.create_default_context(cafile=str(ca))
    names = ["allowed.test", "www.allowed.test", "other.test", "blocked.test"] * 5
    with socket.create_connection(("127.0.0.1", dot_port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        for i, name in enumerate(names):
            q = dns.message.make_query(name, "A", id=i + 1).to_wire()
            s.sendall(struct.pack("!H", len(q)) + q)
        got = {}
        buf = b""
        while len(got) < len(names):
            buf += s.recv(65535)
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                size = struct.unpack("!H", buf[:2])[0]
                m = dns.message.from_wire(buf[2:2 + size])
                buf = buf[2 + size:]
                got[m.id] = m
    assert sorted(got) == list(range(1, len(names) + 1))


def test_doh_bad_requests_get_http_errors(encrypted_serving):
    _d, _dot_port, doh_port, ca = encrypted_serving
    base = f"https://127.0.0.1:{doh_port}"

    def status(*args):
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "--cacert", str(ca), "--max-time", "10", *args],
                             capture_output=True, text=True, timeout=20)
        return out.stdout

    assert status(f"{base}/other") == "404"
    assert status(f"{base}/dns-query") == "400"                     # no dns=
    assert status(f"{base}/dns-query?dns=***") == "400"
    assert status("-X", "PUT", f"{base}/dns-query") == "405"
    assert status("-H", "content-type: text/plain", "--data", "x", f"{base}/dns-query") == "415"
    # ...and the service still answers afterwards.
    assert verdict(doh_ask(doh_port, ca, "allowed.test", THPT)) == ("NOERROR", ("192.0.2.10",))


def test_dot_with_a_certificate_the_school_installs(tmp_path, dot_unbound):
    from dnshelpers import free_port
    from tlshelpers import make_pki

    own = make_pki(tmp_path / "own", names=("dns.truong.test",), label="a public CA")
    port = free_port()
    (tmp_path / "filterd").mkdir()
    d = Daemon(tmp_path / "filterd", dot_unbound[0].address, dns_extra=(
        f"  tls_listen: ['127.0.0.1:{port}']\n"
        f"  tls_cert_file: {own.cert}\n  tls_key_file: {own.key}\n")).start()
    try:
        msg = dot_ask(port, own.ca, "allowed.test", THPT, hostname="dns.truong.test")
        assert verdict(msg) == ("NOERROR", ("192.0.2.10",))
        import ssl  # the school's certificate is served, not one from the school CA
        served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))
        assert served == ssl.PEM_cert_to_DER_cert(own.cert.read_text())
    finally:
        d.stop()
