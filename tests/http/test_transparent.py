"""Transparent mode for real: client namespace -> gateway namespace with an nftables redirect.

The client has no proxy settings; it talks to an upstream address behind the gateway,
and the gateway's nftables redirects TCP 80/443 to the relay, which reads the original
destination with SO_ORIGINAL_DST.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
UPSTREAM = "10.99.1.10"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def namespaces(tmp_path, upstreams):
    if os.geteuid() != 0:
        pytest.skip("transparent mode test needs root (ip netns, nft)")
    if not (shutil.which("ip") and shutil.which("nft")):
        pytest.skip("needs iproute2 and nftables")
    tag = secrets.token_hex(3)
    cl, gw = f"fdc{tag}", f"fdg{tag}"
    vc, vg = f"vc{tag}", f"vg{tag}"
    try:
        sh("ip", "netns", "add", cl)
        sh("ip", "netns", "add", gw)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create network namespaces here: {exc.stderr.decode().strip()}")
    proc = None
    try:
        sh("ip", "link", "add", vc, "netns", cl, "type", "veth", "peer", "name", vg, "netns", gw)
        sh("ip", "-n", cl, "addr", "add", "10.99.0.2/24", "dev", vc)
        sh("ip", "-n", gw, "addr", "add", "10.99.0.1/24", "dev", vg)
        for ns, dev in ((cl, vc), (gw, vg), (cl, "lo"), (gw, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", gw, "addr", "add", f"{UPSTREAM}/32", "dev", "lo")  # "the internet"
        sh("ip", "-n", cl, "route", "add", "default", "via", "10.99.0.1")
        rules = tmp_path / "gw.nft"
        rules.write_text(
            "table inet filterd {\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname "{vg}" tcp dport {{ 80, 443 }} redirect to :3129\n'
            "  }\n"
            "}\n")
        sh("ip", "netns", "exec", gw, "nft", "-f", str(rules))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        pki = upstreams.pki.ca_pem.parent
        proc = subprocess.Popen(["ip", "netns", "exec", gw, sys.executable,
                                 str(HERE / "transparent_gateway.py"), str(pki),
                                 str(tmp_path / "var"), UPSTREAM, "3129"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
        yield cl, upstreams
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        for ns in (cl, gw):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def client_curl(ns: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "10", *args],
                          capture_output=True, timeout=30)


def test_transparent_http_and_https(namespaces):
    ns, up = namespaces
    ca = str(up.pki.ca_pem)
    page = client_curl(ns, "--resolve", f"allowed.test:80:{UPSTREAM}", "http://allowed.test/page")
    assert page.returncode == 0 and page.stdout == up.page, page.stderr
    tls = client_curl(ns, "--cacert", ca, "--resolve", f"allowed.test:443:{UPSTREAM}",
                      "https://allowed.test/page", "-w", "%{ssl_verify_result}")
    assert tls.returncode == 0, tls.stderr
    assert tls.stdout == up.page + b"0"          # byte-identical, upstream certificate verified
    blocked = client_curl(ns, "--resolve", f"blocked.test:80:{UPSTREAM}", "-w", "%{http_code}",
                          "http://blocked.test/x")
    assert blocked.stdout.endswith(b"403") and "Nội dung người lớn".encode() in blocked.stdout
    refused = client_curl(ns, "--cacert", ca, "--resolve", f"casino.test:443:{UPSTREAM}",
                          "https://casino.test/")
    assert refused.returncode == 35
    echo = client_curl(ns, "--resolve", f"allowed.test:80:{UPSTREAM}", "http://allowed.test/echo")
    assert b'"Host": "allowed.test"' in echo.stdout
    # No SNI (an address typed by hand): decided on the original destination, spliced.
    bare = client_curl(ns, "-k", f"https://{UPSTREAM}/page")
    assert bare.returncode == 0 and bare.stdout == up.page, bare.stderr
