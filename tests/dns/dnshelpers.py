"""Helpers for DNS tests: a real unbound upstream on loopback, free ports, a fake engine."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filterd.policy.decision import Action, BlockMode, Decision, Query, Reason, RuleSource

# The synthetic zone unbound serves; nothing else resolves (no root hints, no network).
ZONE = {
    "allowed.test": ("A", "192.0.2.10"),
    "www.allowed.test": ("A", "192.0.2.11"),
    "other.test": ("A", "192.0.2.12"),
    "forcesafesearch.google.com": ("A", "216.239.38.120"),
    "restrict.youtube.com": ("A", "216.239.38.119"),
    "www.google.com": ("A", "142.250.1.1"),
    "www.google.com.vn": ("A", "142.250.1.2"),
    "restrictmoderate.youtube.com": ("A", "216.239.38.121"),
    "www.youtube.com": ("A", "142.250.1.3"),
    "blocked.test": ("A", "192.0.2.66"),   # what an unfiltered client would get
    "www.bing.com": ("A", "204.79.197.200"),
    "strict.bing.com": ("A", "204.79.197.220"),
    "duckduckgo.com": ("A", "52.142.124.215"),
    "safe.duckduckgo.com": ("A", "52.142.124.216"),
    "vnexpress.net": ("A", "111.65.250.2"),   # the README's allowed example
}


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (best effort)."""
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        return port
    raise RuntimeError("no free port")


def unbound_config(directory: Path, port: int, extra: str = "") -> Path:
    lines = [
        "server:",
        "  interface: 127.0.0.1",
        f"  port: {port}",
        "  do-ip6: no",
        "  do-daemonize: no",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{directory}"',
        '  pidfile: ""',
        "  use-syslog: no",
        '  logfile: ""',
        "  verbosity: 0",
        "  num-threads: 1",
        "  access-control: 127.0.0.0/8 allow",
        '  module-config: "iterator"',
        "  harden-large-queries: no",
        '  local-zone: "." static',
    ]
    for name, (rtype, value) in ZONE.items():
        lines.append(f'  local-data: "{name}. 300 IN {rtype} {value}"')
    for i in range(9):
        lines.append(f"  local-data: 'big.test. 300 IN TXT \"{i}" + "y" * 200 + "\"'")
    lines.append('  local-data: "short.test. 2 IN A 192.0.2.20"')
    if extra:
        lines.append(extra)
    lines += ["remote-control:", "  control-enable: no"]
    path = directory / "unbound.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Unbound:
    directory: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    extra: str = ""

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> Unbound:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        conf = unbound_config(self.directory, self.port, self.extra)
        self.proc = subprocess.Popen(["unbound", "-d", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_dns(self.address, "allowed.test", proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


def wait_dns(address: tuple[str, int], name: str, timeout: float = 15.0,
             proc: subprocess.Popen | None = None) -> None:
    import dns.message
    import dns.query

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
        try:
            dns.query.udp(dns.message.make_query(name, "A"), address[0], port=address[1],
                          timeout=0.5)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"no DNS answer from {address} within {timeout}s")


def _decision(q: Query, action: Action, reason: Reason, **kw) -> Decision:
    return Decision(action=action, reason=reason, name=q.name, group=kw.pop("group", "thcs"),
                    at=q.at, rule=kw.pop("rule", q.name),
                    source=RuleSource("builtin", "fake"), **kw)


@dataclass
class FakeEngine:
    """Blocks names in `blocked` (category adult), rewrites `rewrites`, allows the rest."""

    blocked: set[str] = field(default_factory=lambda: {"blocked.test", "adult.test"})
    mode: BlockMode = BlockMode.NXDOMAIN
    rewrites: dict[str, str] = field(default_factory=dict)
    queries: list[Query] = field(default_factory=list)

    def decide(self, q: Query) -> Decision:
        self.queries.append(q)
        if q.name in self.blocked:
            return _decision(q, Action.BLOCK, Reason.CATEGORY, category="adult",
                             block_mode=self.mode, categories=("adult",))
        if q.name in self.rewrites:
            return _decision(q, Action.REWRITE, Reason.SAFE_SEARCH,
                             rewrite_target=self.rewrites[q.name])
        return _decision(q, Action.ALLOW, Reason.DEFAULT)


def now() -> datetime:
    return datetime.now(UTC)


class FakeUpstream:
    """A scriptable UDP (and TCP) DNS server in the test's event loop.

    `handler(query_bytes, tcp) -> bytes | None` makes the answer (None: stay silent).
    """

    def __init__(self, handler):
        self.handler = handler
        self.received: list[bytes] = []
        self.tcp_received: list[bytes] = []
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._udp = None
        self._tcp = None

    async def start(self):
        import asyncio
        import struct

        outer = self
        loop = asyncio.get_running_loop()

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                outer.received.append(data)
                out = outer.handler(data, False)
                if out is not None:
                    self.transport.sendto(out, addr)


        async def tcp(reader, writer):
            try:
                while True:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(size)
                    outer.tcp_received.append(data)
                    out = outer.handler(data, True)
                    if out is not None:
                        writer.write(struct.pack("!H", len(out)) + out)
                        await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        for _ in range(20):   # the TCP port twin of a free UDP port may be taken: try again
            self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(tcp, "127.0.0.1", port)
                break
            except OSError:
                self._udp.close()
        else:
            raise RuntimeError("no free UDP+TCP port pair")
        self.address = ("127.0.0.1", port)
        return self

    def close(self):
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()


def reply_a(data: bytes, ip: str = "192.0.2.1", ttl: int = 300, tc: bool = False) -> bytes:
    from dnslib import QTYPE, RR, A, DNSRecord

    rec = DNSRecord.parse(data)
    out = rec.reply()
    out.header.tc = int(tc)
    if rec.q.qtype == QTYPE.A:
        out.add_answer(RR(rec.q.qname, QTYPE.A, ttl=ttl, rdata=A(ip)))
    return out.pack()


class ServerThread:
    """filterd's DNS server (Resolver + listeners) on its own event loop in a thread."""

    def __init__(self, engine, upstreams, *, tcp_idle_timeout: float = 10.0,
                 listen=(("127.0.0.1", 0),), **resolver_kw):
        self.listen = listen
        self.engine = engine
        self.upstreams = upstreams
        self.tcp_idle_timeout = tcp_idle_timeout
        self.resolver_kw = resolver_kw
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.resolver = None

    def __enter__(self):
        import asyncio
        import threading

        from filterd.dns.resolver import Resolver
        from filterd.dns.server import serve
        from filterd.dns.upstream import UpstreamPool

        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def main():
            self.resolver = Resolver(self.engine, UpstreamPool(self.upstreams, timeout=0.5),
                                     **self.resolver_kw)
            self.listeners = await serve(self.resolver, list(self.listen),
                                         tcp_idle_timeout=self.tcp_idle_timeout)
            self.address = self.listeners.addresses[0]
            self.stop = asyncio.Event()
            ready.set()
            await self.stop.wait()
            self.listeners.close()
            self.resolver.upstreams.close()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),),
                                       daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("server did not start")
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
