"""An intercepting group: the relay hands its connections to the embedded mitmproxy + our addon."""

from __future__ import annotations

import json
import subprocess

import pytest

from filterd.http.addon import Addon, search_engine

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def isvc(tmp_path_factory, upstreams, service_factory):
    run_service, stop_service = service_factory
    r = run_service(
        tmp_path_factory.mktemp("isvc"),
        upstreams,
        intercept_groups=frozenset({"managed"}),
        mitm_options={"ssl_verify_upstream_trusted_ca": str(upstreams.pki.ca_pem)},
    )
    yield r
    stop_service(r)


def curl_managed(isvc, url: str, *extra: str) -> subprocess.CompletedProcess:
    ca = isvc.service.ca.pem_path
    return subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "15",
            "--interface",
            "127.0.0.2",
            "-x",
            isvc.proxy_url,
            "--cacert",
            str(ca),
            *extra,
            url,
        ],
        capture_output=True,
        timeout=30,
    )


def test_https_block_page_for_intercepting_group(isvc):
    out = curl_managed(isvc, "https://blocked.test/private?q=1", "-w", "%{http_code}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(b"403")
    assert "Nội dung người lớn".encode() in out.stdout
    _, query, _ = isvc.sink.records[-1]
    assert query.path == "intercept" and query.url == "https://blocked.test/private?q=1"


def test_youtube_restrict_header(isvc):
    out = curl_managed(isvc, "https://www.youtube.com/echo/watch")
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["headers"]["YouTube-Restrict"] == "Moderate"


def test_safe_search_and_search_term(isvc):
    isvc.sink.records.clear()
    out = curl_managed(isvc, "https://www.google.com/echo/search?q=cute+cats&safe=off")
    assert out.returncode == 0, out.stderr
    path = json.loads(out.stdout)["path"]
    assert "safe=active" in path and "safe=off" not in path
    out = curl_managed(isvc, "https://www.google.com/search?q=cute+cats&safe=off")
    decision, query, extra = isvc.sink.records[-1]
    assert extra == {"search_term": "cute cats"} and query.path == "intercept"
    assert decision.action.value == "enforce"


def test_other_groups_are_not_intercepted(isvc, upstreams):
    """Same proxy, a non-intercepting client: the upstream certificate, not the school CA's."""
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "15",
            "-x",
            isvc.proxy_url,
            "--cacert",
            str(upstreams.pki.ca_pem),
            "https://allowed.test/page",
        ],
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0 and out.stdout == upstreams.page


def test_no_intercept_list_is_spliced(isvc, upstreams):
    default = isvc.service.decider.no_intercept
    isvc.service.decider.no_intercept = ("allowed.test",)
    try:
        out = curl_managed(
            isvc, "https://allowed.test/page", "--cacert", str(upstreams.pki.ca_pem)
        )
    finally:
        isvc.service.decider.no_intercept = default
    assert out.returncode == 0, out.stderr
    assert out.stdout == upstreams.page


def test_mitmproxy_refuses_connections_without_the_token(isvc):
    import socket

    host, port = isvc.service.relay.handoff.host, isvc.service.relay.handoff.port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\nX-Filterd-Client: 10.0.0.9\r\n\r\n")
        assert s.recv(100).split(b" ")[1] == b"403"


@pytest.mark.parametrize(
    "host,want",
    [
        ("www.google.com", "google"),
        ("www.google.com.vn", "google"),
        ("google.co.uk", "google"),
        ("www.bing.com", "bing.com"),
        ("duckduckgo.com", "duckduckgo.com"),
        ("googlefake.com", None),
        ("example.com", None),
    ],
)
def test_search_engine(host, want):
    assert search_engine(host) == want


def test_search_term_extraction():
    assert Addon._search_term("www.google.com", "/search?q=meo+con") == "meo con"
    assert Addon._search_term("www.youtube.com", "/results?search_query=abc") == "abc"
    assert Addon._search_term("www.google.com", "/maps?q=x") is None


def test_youtube_level_follows_the_group(fake_engine):
    from datetime import UTC, datetime

    from filterd.http.addon import youtube_level
    from filterd.policy.decision import Query

    d = fake_engine().decide(Query("www.youtube.com", "10.0.0.1", datetime.now(UTC)))
    assert youtube_level(d, "Strict") == "Moderate"
    from dataclasses import replace

    assert youtube_level(replace(d, rule="youtube: strict"), "Moderate") == "Strict"


def test_lazy_upstream_block_page_without_reaching_the_server(isvc):
    """connection_strategy=lazy: a blocked request is answered without any upstream connection
    (this name resolves nowhere; an eager mitmproxy would fail before our addon ran)."""
    out = curl_managed(isvc, "https://nowhere.blocked.test/x", "-w", "%{http_code}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(b"403") and "Nội dung người lớn".encode() in out.stdout


def test_https_block_page_in_chromium(isvc, artifacts_dir):
    """A managed device's browser that trusts only the school CA gets the HTTPS block page."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from tests.http.test_blockpage import CHROMIUM_ARGS, assert_accessible

    playwright = pytest.importorskip("playwright.sync_api")
    cert = x509.load_pem_x509_certificate(isvc.service.ca.pem())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    isvc.engine.clients["127.0.0.1"] = "managed"  # Chromium connects from 127.0.0.1
    isvc.engine.only = frozenset()  # the browser's own background requests stay here
    isvc.sink.records.clear()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                # Trust exactly the school CA's key (mitmproxy signs leaves with it), nothing else.
                args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"],
                proxy={"server": isvc.proxy_url},
            )
            try:
                page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-US")
                resp = page.goto("https://blocked.test/some/video?lang=en")
                assert resp.status == 403 and page.url.startswith("https://blocked.test/")
                assert page.get_by_role("heading", level=1).inner_text() == "This page is blocked"
                assert_accessible(page)
                page.screenshot(path=str(artifacts_dir / "blockpage-https-en.png"), full_page=True)
            finally:
                browser.close()
    finally:
        isvc.engine.clients.pop("127.0.0.1")
        isvc.engine.only = None
    (query,) = [q for _, q, _ in isvc.sink.records if q.name == "blocked.test"]
    assert query.path == "intercept" and query.url == "https://blocked.test/some/video?lang=en"


def test_mitmproxy_keeps_to_the_ca_directory(tmp_path, upstreams, service_factory, monkeypatch):
    """confdir is filterd's CA directory: nothing goes to ~/.mitmproxy, the school CA signs."""
    from pathlib import Path

    run_service, stop_service = service_factory
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert Path("~").expanduser() == home
    r = run_service(tmp_path, upstreams, intercept_groups=frozenset({"managed"}))
    try:
        key = r.service.settings.ca_directory / "mitmproxy-ca.pem"
        before = key.read_bytes()
        out = curl_managed(r, "https://blocked.test/x", "-w", "%{http_code}")
        assert out.returncode == 0 and out.stdout.endswith(b"403"), out.stderr
    finally:
        stop_service(r)
    assert not (home / ".mitmproxy").exists()
    assert key.read_bytes() == before and key.stat().st_mode & 0o777 == 0o600
