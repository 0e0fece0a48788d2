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
