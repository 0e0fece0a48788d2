"""The block page server: DNS-steered requests, /ca, PAC/WPAD, reviews, bad input."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest

from filterd.state.reviews import MAX_MESSAGE

pytestmark = pytest.mark.integration


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args], capture_output=True, timeout=20
    )


def page_url(svc, host: str, path: str = "/") -> list[str]:
    port = svc.blockpage[1]
    return ["--resolve", f"{host}:{port}:127.0.0.1", f"http://{host}:{port}{path}"]


def test_steered_request_shows_the_engines_decision(svc):
    out = curl("-w", "%{http_code}", *page_url(svc, "casino.test", "/play?x=1"))
    assert out.stdout.endswith(b"403")
    html = out.stdout.decode()
    assert "Cờ bạc, cá cược" in html and 'lang="vi"' in html
    assert "casino.test" in html
    q = svc.engine.calls[-1]
    assert (q.name, q.client_ip, q.path) == ("casino.test", "127.0.0.1", "http")
    assert q.url.startswith("http://casino.test/play")
    assert "ut1-gambling" not in html  # students do not see the list


def test_staff_see_rule_and_list(svc):
    out = curl("--interface", "127.0.0.3", *page_url(svc, "casino.test", "/?lang=en"))
    html = out.stdout.decode()
    assert 'lang="en"' in html and "For teachers and staff" in html
    assert "(UT1, University of Toulouse, version 2026-11-25)" in html


def test_not_blocked_any_more(svc):
    out = curl("-w", "%{http_code}", *page_url(svc, "fine.test"))
    assert out.stdout.endswith(b"200") and "không bị chặn".encode() in out.stdout


def test_ca_page_and_files(svc):
    html = curl(*page_url(svc, "casino.test", "/ca?lang=en")).stdout.decode()
    for platform in ("Windows", "macOS", "ChromeOS", "Android", "iOS"):
        assert platform in html
    pem = curl(*page_url(svc, "x.test", "/ca/filterd-ca.pem")).stdout
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    der = curl(*page_url(svc, "x.test", "/ca/filterd-ca.crt")).stdout
    assert der[:1] == b"\x30"
    key = svc.service.settings.ca_directory / "mitmproxy-ca.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" not in pem + der


def test_wpad_and_pac(svc):
    for path in ("/wpad.dat", "/proxy.pac"):
        out = curl("-D", "-", *page_url(svc, "wpad.school.test", path))
        assert b"application/x-ns-proxy-autoconfig" in out.stdout
        assert f"PROXY 127.0.0.1:{svc.proxy[1]}".encode() in out.stdout


def _form(svc, host="casino.test", client="127.0.0.1"):
    html = curl("--interface", client, *page_url(svc, host)).stdout.decode()
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
    return token


def post(svc, data: dict, host="casino.test", origin: str | None = "same", client="127.0.0.1"):
    args = ["--interface", client, "-w", "%{http_code}"]
    for k, v in data.items():
        args += ["--data-urlencode", f"{k}={v}"]
    if origin == "same":
        origin = f"http://{host}:{svc.blockpage[1]}"
    if origin:
        args += ["-H", f"Origin: {origin}"]
    return curl(*args, *page_url(svc, host, "/_filterd/review"))


def test_review_stored_escaped_and_capped(svc):
    token = _form(svc)
    hostile = '<script>alert("x")</script>\u0001\u202e' + "é" * 1000
    out = post(
        svc,
        {"name": "casino.test", "url": "http://casino.test/", "csrf": token, "message": hostile},
    )
    assert out.stdout.endswith(b"200"), out
    assert b"<script>" not in out.stdout
    (row,) = svc.service.reviews.open_reviews()
    assert row["name"] == "casino.test" and row["category"] == "gambling"
    assert row["reason"] == "category" and row["group_id"] == "thcs"
    assert len(row["message"]) <= MAX_MESSAGE
    assert row["message"].startswith('<script>alert("x")</script>')  # stored as text, not HTML
    assert "\u0001" not in row["message"]


def test_hostile_host_is_escaped(svc):
    svc.engine.blocked["evil-x.test"] = "adult"
    out = curl(
        "-H",
        "Host: evil-x.test",
        "-H",
        "Accept-Language: <b>en</b>",
        f"http://127.0.0.1:{svc.blockpage[1]}/%3Cscript%3E?lang=%22%3E%3Cscript%3E",
    )
    assert b"<script>" not in out.stdout and b"evil-x.test" in out.stdout
    bad = curl(
        "-w", "%{http_code}", "-H", "Host: <script>", f"http://127.0.0.1:{svc.blockpage[1]}/"
    )
    assert bad.stdout.endswith(b"400")


def test_review_refused_without_token_or_from_another_origin(svc):
    token = _form(svc)
    assert post(svc, {"name": "casino.test", "csrf": "0" * 32}).stdout.endswith(b"403")
    assert post(
        svc, {"name": "casino.test", "csrf": token}, origin="http://attacker.example"
    ).stdout.endswith(b"403")
    other_client = _form(svc, client="127.0.0.4")
    assert post(svc, {"name": "casino.test", "csrf": other_client}).stdout.endswith(b"403")
    assert svc.service.reviews.open_reviews() == []


def test_review_rate_limited_per_client(svc):
    token = _form(svc)
    codes = [post(svc, {"name": "casino.test", "csrf": token}).stdout[-3:] for _ in range(7)]
    assert codes[:5] == [b"200"] * 5 and codes[5:] == [b"429"] * 2
    other = _form(svc, client="127.0.0.5")
    assert post(svc, {"name": "casino.test", "csrf": other}, client="127.0.0.5").stdout.endswith(
        b"200"
    )


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"\x16\x03\x01\x00\x05hello\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
        (
            b"POST /_filterd/review HTTP/1.1\r\nHost: a.test\r\nContent-Length: 99999999\r\n\r\n",
            b"413",
        ),
        (
            b"POST /_filterd/review HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"411",
        ),
    ],
)
def test_bad_input(svc, raw, status):
    with socket.create_connection(svc.blockpage, timeout=10) as s:
        s.sendall(raw)
        assert s.recv(100).split(b" ")[1] == status


def test_slow_client_times_out(svc):
    svc.service.blockserver.head_timeout = 0.5
    with socket.create_connection(svc.blockpage, timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        assert s.recv(10) == b""
    end = time.monotonic() + 5
    while svc.service.blockserver.active and time.monotonic() < end:
        time.sleep(0.05)
    assert svc.service.blockserver.active == 0
