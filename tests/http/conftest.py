"""Fixtures for the HTTP side: a fake engine (until the real one lands), test upstreams
(plain HTTP and HTTPS with a certificate made here), and a running HttpService."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from filterd.http.eventsink import MemorySink
from filterd.http.service import HttpService, HttpSettings
from filterd.http.sni_relay import RelayLimits
from filterd.policy.decision import Action, BlockMode, Decision, Query, Reason, RuleSource

LABELS = {"thcs": "Trung học cơ sở", "giao_vien": "Giáo viên", "managed": "Máy của trường"}
ALWAYS = ("adult", "gambling", "violence")


@dataclass(frozen=True)
class FakeGroup:
    id: str
    label_vi: str
    label_en: str
    block_always: dict = field(default_factory=lambda: dict.fromkeys(ALWAYS))


@dataclass(frozen=True)
class FakeHit:
    domain: str
    categories: frozenset
    sources: tuple


@dataclass
class FakeIndex:
    """Stands in for ListIndex.url_match (UT1 `urls` prefixes)."""

    urls: dict = field(
        default_factory=lambda: {"allowed.test/bad/": "violence", "allowed.test/games/": "games"}
    )
    version: str = "2026-11-25"

    def url_match(self, url: str) -> FakeHit | None:
        bare = url.split("://", 1)[1]
        for prefix, cat in self.urls.items():
            if bare.startswith(prefix):
                return FakeHit(prefix, frozenset({cat}), (f"ut1-{cat}-urls",))
        return None


@dataclass
class FakeEngine:
    """Decides on names like the real engine (filterd.policy.engine) for a few test names."""

    blocked: dict[str, str] = field(
        default_factory=lambda: {
            "blocked.test": "adult",
            "casino.test": "gambling",
            "games.test": "games",
        }
    )
    clients: dict[str, str] = field(
        default_factory=lambda: {"127.0.0.3": "giao_vien", "127.0.0.2": "managed"}
    )
    index: FakeIndex = field(default_factory=FakeIndex)
    calls: list[Query] = field(default_factory=list)
    # Only these names are allowed when set (a browser's own background requests, e.g. to
    # accounts.google.com, are then refused by the proxy instead of leaving the machine).
    only: frozenset[str] | None = None

    def group_for(self, client_ip: str, client_mac: str | None = None) -> FakeGroup:
        gid = self.clients.get(client_ip, "thcs")
        return FakeGroup(gid, LABELS[gid], gid.upper())

    def decide(self, q: Query) -> Decision:
        self.calls.append(q)
        group = self.group_for(q.client_ip)
        common = dict(name=q.name, group=group.id, at=q.at, group_label=group.label_vi)
        if self.only is not None and q.name not in self.only and q.name not in self.blocked:
            return Decision(
                Action.BLOCK,
                Reason.GROUP_DENY,
                rule=q.name,
                source=RuleSource("policy", "tests"),
                block_mode=BlockMode.ADDRESS,
                **common,
            )
        for domain, cat in self.blocked.items():
            if q.name == domain or q.name.endswith("." + domain):
                return Decision(
                    Action.BLOCK,
                    Reason.CATEGORY,
                    rule=domain,
                    source=RuleSource("list", f"ut1-{cat}", "2026-11-25"),
                    category=cat,
                    categories=(cat,),
                    block_mode=BlockMode.ADDRESS,
                    **common,
                )
        if q.name == "www.youtube.com":
            return Decision(
                Action.ENFORCE,
                Reason.YOUTUBE,
                rule="youtube: moderate",
                source=RuleSource("policy", "policies/thcs.yaml", line=12),
                **common,
            )
        if q.name.endswith("google.com"):
            return Decision(
                Action.ENFORCE,
                Reason.SAFE_SEARCH,
                rule="safe_search: on",
                source=RuleSource("policy", "policies/thcs.yaml", line=11),
                **common,
            )
        return Decision(
            Action.ALLOW, Reason.DEFAULT, rule="", source=RuleSource("builtin", "default"), **common
        )


# -- certificates ---------------------------------------------------------------------------


@dataclass
class TestPKI:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path
    cert_der: bytes


def make_pki(directory: Path, names: list[str]) -> TestPKI:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "filterd test upstream CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = TestPKI(
        directory / "upstream-ca.pem",
        directory / "upstream.pem",
        directory / "upstream.key",
        cert.public_bytes(serialization.Encoding.DER),
    )
    pki.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


# -- upstream servers -----------------------------------------------------------------------

PAGE = (
    "<!doctype html><title>upstream</title><p>hello from upstream " + "x" * 5000 + "</p>"
).encode()


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/echo"):
            body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
            ctype = "application/json"
        elif self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"one,", b"two,", b"three"):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        else:
            body, ctype = PAGE, "text/html"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@dataclass
class Upstreams:
    http_port: int
    https_port: int
    pki: TestPKI
    page: bytes = PAGE


@pytest.fixture(scope="session")
def upstreams(tmp_path_factory) -> Upstreams:
    d = tmp_path_factory.mktemp("pki")
    pki = make_pki(d, ["allowed.test", "www.youtube.com", "www.google.com", "blocked.test"])
    plain = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    tls = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.cert_pem, pki.key_pem)
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    for srv in (plain, tls):
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield Upstreams(plain.server_address[1], tls.server_address[1], pki)
    plain.shutdown()
    tls.shutdown()


# -- the service ----------------------------------------------------------------------------


@dataclass
class Running:
    service: HttpService
    engine: FakeEngine
    sink: MemorySink
    loop: asyncio.AbstractEventLoop
    upstreams: Upstreams

    @property
    def proxy(self) -> tuple[str, int]:
        return self.service.addresses["proxy"]

    @property
    def proxy_url(self) -> str:
        host, port = self.proxy
        return f"http://{host}:{port}"

    @property
    def blockpage(self) -> tuple[str, int]:
        return self.service.addresses["blockpage"]

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def overrides(up: Upstreams) -> dict[str, tuple[str, int | None]]:
    out: dict[str, tuple[str, int | None]] = {}
    for name in (
        "allowed.test",
        "plain.test",
        "blocked.test",
        "www.youtube.com",
        "www.google.com",
        "casino.test",
    ):
        out[f"{name}:80"] = ("127.0.0.1", up.http_port)
        out[f"{name}:443"] = ("127.0.0.1", up.https_port)
    return out


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop, as the daemon and `filterd proxy` run (transports differ in details the relay
    relies on: set_protocol, pause/resume); FILTERD_TEST_LOOP=asyncio for the stdlib loop."""
    if os.environ.get("FILTERD_TEST_LOOP") == "asyncio":
        return asyncio.new_event_loop()
    import uvloop

    return uvloop.new_event_loop()


def run_service(tmp_path: Path, up: Upstreams, **settings_kw) -> Running:
    engine = FakeEngine()
    sink = MemorySink()
    loop = new_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    kw = dict(
        data_dir=tmp_path / "var",
        blockpage_listen=("127.0.0.1", 0),
        proxy_listen=("127.0.0.1", 0),
        limits=RelayLimits(hello_timeout=1.0, head_timeout=2.0),
        upstream_overrides=overrides(up),
    )
    kw.update(settings_kw)
    settings = HttpSettings(**kw)

    async def go() -> HttpService:
        return await HttpService(settings, lambda: engine, sink).start()

    service = asyncio.run_coroutine_threadsafe(go(), loop).result(60)
    return Running(service, engine, sink, loop, up)


def stop_service(r: Running) -> None:
    r.call(r.service.close())
    r.loop.call_soon_threadsafe(r.loop.stop)


@pytest.fixture
def svc(tmp_path, upstreams) -> Running:
    r = run_service(tmp_path, upstreams)
    yield r
    stop_service(r)


@pytest.fixture(scope="session")
def service_factory():
    """(start, stop) for tests that need their own settings."""
    return run_service, stop_service


@pytest.fixture
def fake_engine() -> type[FakeEngine]:
    return FakeEngine
