"""The lean proxy in front: decide on CONNECT host / TLS SNI / Host+URL, then splice.

The common case, an allowed TLS connection of a group that does not intercept,
costs one ClientHello parse, one engine decision and a byte-for-byte splice: the
client sees the real server's certificate and nothing enters mitmproxy. Blocked
TLS connections are refused after the ClientHello with a fatal TLS alert. Only a
group that opted into interception is handed to the embedded mitmproxy.

Two listeners: explicit (browsers configured or PAC/WPAD: CONNECT and absolute
http:// URLs) and transparent (nftables redirect; the original destination comes
from SO_ORIGINAL_DST; TLS or plain HTTP told apart by the first byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from filterd.http import eventsink
from filterd.http.blockapp import MAX_FORM, BlockApp, Response
from filterd.http.blockpage import choose_lang
from filterd.http.clienthello import MAX_HELLO, ClientHello, ClientHelloError, looks_like_tls, parse
from filterd.http.decider import Decider, is_ip
from filterd.http.eventsink import EventSink
from filterd.http.http11 import (
    STREAM_LIMIT,
    HttpError,
    Request,
    error_response,
    normalize_host,
    parse_head,
    read_head,
    response,
    split_absolute,
)
from filterd.http.pipe import open_upstream, splice_streams
from filterd.policy.decision import Decision, Query

log = logging.getLogger(__name__)

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IP6T_SO_ORIGINAL_DST = 80  # linux/netfilter_ipv6/ip6_tables.h
TLS_ALERT_ACCESS_DENIED = b"\x15\x03\x01\x00\x02\x02\x31"  # fatal alert 49
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
CHUNK = 65536


@dataclass(frozen=True, slots=True)
class RelayLimits:
    head_timeout: float = 30.0  # a request head (or the next one on keep-alive) must arrive in time
    hello_timeout: float = 10.0  # ClientHello after CONNECT / accept
    connect_timeout: float = 10.0
    connect_ports: tuple[int, ...] = (443,)  # like squid's SSL_ports: CONNECT elsewhere is refused

    def __post_init__(self) -> None:
        if min(self.head_timeout, self.hello_timeout, self.connect_timeout) <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True, slots=True)
class Handoff:
    """Where the embedded mitmproxy listens, and the secret that proves we are the relay."""

    host: str
    port: int
    token: str


@dataclass
class RelayStats:
    active: int = 0
    spliced: int = 0
    refused: int = 0
    intercepted: int = 0
    http_blocked: int = 0
    http_forwarded: int = 0
    errors: int = 0
    timeouts: int = 0


@dataclass
class SniRelay:
    decider: Decider
    app: BlockApp
    sink: EventSink
    limits: RelayLimits = field(default_factory=RelayLimits)
    # "name:port" or name -> (address, port or None): test upstreams, split-horizon names
    upstream_overrides: Mapping[str, tuple[str, int | None]] = field(default_factory=dict)
    handoff: Handoff | None = None
    stats: RelayStats = field(default_factory=RelayStats)

    def __post_init__(self) -> None:
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task] = set()
        self._own: set[tuple[str, int]] = set()
        self._fast: set[_FastConnect] = set()  # explicit connections still in set-up

    # -- listeners -----------------------------------------------------------------------
    async def serve_explicit(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        conn = self._conn_handler(self._explicit)
        server = await loop.create_server(
            lambda: _FastConnect(self, conn), host, port, reuse_address=True, backlog=1024
        )
        self._servers.append(server)
        return server

    async def serve_transparent(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        conn = self._conn_handler(self._transparent)
        server = await loop.create_server(
            lambda: _FastConnect(self, conn, transparent=True), host, port,
            reuse_address=True, backlog=1024,
        )
        self._servers.append(server)
        for sock in server.sockets:
            self._own.add(sock.getsockname()[:2])
        return server

    def _redirected_dst(self, sock: socket.socket | None) -> tuple[str, int] | None:
        """The original destination of a redirected connection; None if not redirected
        or a loop back to one of our own listeners."""
        dst = original_dst(sock)
        if (
            dst is None
            or dst in self._own
            or (dst[0] in {a for a, _ in self._own} and dst[1] in {p for _, p in self._own})
        ):
            return None
        return dst

    async def _serve(self, handler, host: str, port: int) -> asyncio.Server:
        server = await asyncio.start_server(
            self._conn_handler(handler), host, port, limit=STREAM_LIMIT, reuse_address=True,
            backlog=1024,
        )
        self._servers.append(server)
        for sock in server.sockets:
            self._own.add(sock.getsockname()[:2])
        return server

    def _conn_handler(self, handler):
        async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            self._tasks.add(task)
            self.stats.active += 1
            try:
                await handler(reader, writer)
            except TimeoutError:
                self.stats.timeouts += 1
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                pass
            except Exception:  # one bad connection must never take the listener down
                self.stats.errors += 1
                log.exception("proxy connection failed")
            finally:
                self.stats.active -= 1
                self._tasks.discard(task)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        return conn

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for fast in list(self._fast):
            fast.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- explicit proxy ------------------------------------------------------------------
    async def _explicit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_ip = _peer_ip(writer)
        then: Callable[[], Awaitable[None]] | None = None
        try:
            # One timer for the whole setup (request head, ClientHello, upstream connect),
            # rescheduled per stage: a timeout context costs as much as a ClientHello parse.
            async with asyncio.timeout(self.limits.head_timeout) as tmo:
                head = await read_head(reader)
                if head is None:
                    return
                req = parse_head(head)
                if req.method == "CONNECT":
                    host, port = _authority(req.target)
                    if port not in self.limits.connect_ports:
                        raise HttpError(403, "CONNECT only to TLS ports")
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    tmo.reschedule(_deadline(self.limits.hello_timeout))
                    then = await self._tls(
                        reader, writer, client_ip, tmo, connect_host=host, dst=(host, port)
                    )
            if req.method != "CONNECT":
                await self._http(reader, writer, client_ip, req, transparent_dst=None)
            elif then is not None:
                await then()
        except HttpError as err:
            writer.write(error_response(err))
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    # -- transparent proxy ---------------------------------------------------------------
    async def _transparent(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        client_ip = _peer_ip(writer)
        dst = self._redirected_dst(writer.get_extra_info("socket"))
        if dst is None:
            return  # not redirected, or a loop back to ourselves: refuse
        async with asyncio.timeout(self.limits.hello_timeout) as tmo:
            first = await reader.read(1)
            if not first:
                return
            tls = looks_like_tls(first)
            if tls:
                then = await self._tls(
                    reader, writer, client_ip, tmo, connect_host=None, dst=dst,
                    buf=bytearray(first),
                )
        if tls:
            if then is not None:
                await then()
            return
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                rest = await read_head(reader)
            if rest is None:
                raise HttpError(400, "incomplete request")
            await self._http(
                reader, writer, client_ip, parse_head(first + rest), transparent_dst=dst
            )
        except HttpError as err:
            writer.write(error_response(err))
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    # -- TLS: ClientHello, decide, refuse / splice / hand off ----------------------------
    async def _tls(
        self,
        reader,
        writer,
        client_ip: str,
        tmo: asyncio.Timeout,
        *,
        connect_host: str | None,
        dst: tuple[str, int],
        buf: bytearray | None = None,
    ) -> Callable[[], Awaitable[None]] | None:
        """Read the ClientHello and decide (under the caller's timer `tmo`).

        Returns what to run after the timer, outside it: the splice, or the handoff to
        mitmproxy; None when the connection was refused.
        """
        buf = buf if buf is not None else bytearray()
        try:
            hello = await _read_hello(reader, buf)
        except ClientHelloError:
            self.stats.refused += 1
            return None  # not TLS, or malformed: fail closed
        names = _names(connect_host, hello)
        if not names:
            names = [dst[0]]
        decisions = [
            (n, self.decider.decide(self.decider.query(n, client_ip, "sni"))) for n in names
        ]
        blocked = next(((n, d) for n, d in decisions if d.blocked), None)
        name = hello.sni or connect_host or dst[0]
        if self.handoff is not None and self.decider.intercepts(client_ip, name):
            self.stats.intercepted += 1
            return partial(self._handoff, reader, writer, bytes(buf), client_ip, name, dst)
        if blocked is not None:
            n, decision = blocked
            self.stats.refused += 1
            eventsink.record(self.sink, decision, self.decider.query(n, client_ip, "sni"))
            writer.write(TLS_ALERT_ACCESS_DENIED)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return None
        up_host, up_port = self._upstream(connect_host, dst)
        tmo.reschedule(_deadline(self.limits.connect_timeout))
        upstream = await open_upstream(up_host, up_port)
        self.stats.spliced += 1
        return partial(upstream.run, reader, writer, bytes(buf))

    async def _handoff(
        self, reader, writer, buf: bytes, client_ip: str, name: str, dst: tuple[str, int]
    ) -> None:
        assert self.handoff is not None
        up_host, up_port = self._upstream(name if not is_ip(name) else None, dst)
        authority = f"[{up_host}]:{up_port}" if ":" in up_host else f"{up_host}:{up_port}"
        async with asyncio.timeout(self.limits.connect_timeout):
            mr, mw = await asyncio.open_connection(
                self.handoff.host, self.handoff.port, limit=STREAM_LIMIT
            )
            mw.write(
                (
                    f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
                    f"X-Filterd-Client: {client_ip}\r\nX-Filterd-Token: {self.handoff.token}\r\n"
                    f"X-Filterd-Name: {name}\r\n\r\n"
                ).encode()
            )
            head = await mr.readuntil(b"\r\n\r\n")
        try:
            if head.split(b" ", 2)[1:2] != [b"200"]:
                return
            await splice_streams(reader, writer, mr, mw, buf)
        finally:
            mw.close()

    def _upstream(self, name: str | None, dst: tuple[str, int]) -> tuple[str, int]:
        if name:
            for key in (f"{name}:{dst[1]}", name):
                if key in self.upstream_overrides:
                    addr, port = self.upstream_overrides[key]
                    return addr, port or dst[1]
        return dst

    # -- plain HTTP ----------------------------------------------------------------------
    async def _http(
        self, reader, writer, client_ip: str, req: Request, transparent_dst: tuple[str, int] | None
    ) -> None:
        upstream: tuple[tuple[str, int], asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                keep = await self._one_request(
                    reader, writer, client_ip, req, transparent_dst, upstream
                )
                upstream, client_keep = keep
                if not client_keep:
                    return
                async with asyncio.timeout(self.limits.head_timeout):
                    head = await read_head(reader)
                if head is None:
                    return
                req = parse_head(head)
        finally:
            if upstream is not None:
                upstream[2].close()

    async def _one_request(
        self, reader, writer, client_ip, req: Request, transparent_dst, upstream
    ):
        if req.method == "CONNECT":
            raise HttpError(400, "CONNECT after a request")
        if transparent_dst is None:
            if req.target.startswith("/"):
                # Addressed to the proxy itself: PAC file, CA page.
                resp = self.app.respond(
                    req, client_ip=client_ip, host=normalize_host(req.header("host"))
                )
                await _send(writer, resp, keep_alive=False)
                return upstream, False
            _, host, port, path = split_absolute(req.target)
            dst = (host, port)
        else:
            host = normalize_host(req.header("host"))
            if host is None or not req.target.startswith("/"):
                raise HttpError(400, "bad Host or target")
            port, path, dst = transparent_dst[1], req.target, transparent_dst
        length = req.content_length()
        url = f"http://{host}{'' if port == 80 else f':{port}'}{path}"
        query = self.decider.query(host, client_ip, "http", url=url)
        decision = self.decider.decide(query)
        if decision.blocked:
            self.stats.http_blocked += 1
            return upstream, await self._blocked(
                reader, writer, client_ip, req, decision, query, length, path
            )
        self.stats.http_forwarded += 1
        key = self._upstream(host, dst) if transparent_dst is None else dst
        if upstream is not None and upstream[0] != key:
            upstream[2].close()
            upstream = None
        if upstream is None:
            async with asyncio.timeout(self.limits.connect_timeout):
                ur, uw = await asyncio.open_connection(*key, limit=STREAM_LIMIT)
            upstream = (key, ur, uw)
        _, ur, uw = upstream
        uw.write(_request_head(req, path))
        await _copy_exact(reader, uw, length)
        up_keep, client_keep = await relay_response(ur, writer, req)
        if not up_keep:
            uw.close()
            upstream = None
        return upstream, client_keep and req.keep_alive

    async def _blocked(
        self,
        reader,
        writer,
        client_ip: str,
        req: Request,
        decision: Decision,
        query: Query,
        length: int,
        path: str,
    ) -> bool:
        if length > MAX_FORM:
            raise HttpError(413, "body too large")
        body = await reader.readexactly(length) if length else b""
        if not path.startswith("/_filterd/"):
            eventsink.record(
                self.sink,
                decision,
                Query(name=query.name, client_ip=client_ip, at=query.at, path="http"),
            )  # no URL: not intercepted
        resp = await asyncio.to_thread(
            self.app.respond,
            _origin_form(req, path),
            client_ip=client_ip,
            body=body,
            decision=decision,
            host=query.name,
        )
        await _send(writer, resp, keep_alive=req.keep_alive)
        return req.keep_alive


# -- the explicit listener's fast path -----------------------------------------------------


class _FastConnect(asyncio.Protocol):
    """CONNECT -> ClientHello -> decision -> splice, without streams or a task per connection.

    This is the common case of a school in explicit mode (an allowed HTTPS connection),
    and asyncio's stream machinery cost more CPU than everything else the relay does
    for it. Anything else (plain HTTP, the PAC file, a malformed or unusual request,
    interception) is handed, with every byte received so far, to the stream-based code
    (`SniRelay._explicit`), which stays the reference for behaviour and errors.
    """

    __slots__ = ("buf", "client_ip", "conn", "deadline", "dst", "eof", "host", "relay", "stage",
                 "task", "timer", "transparent", "transport")

    HEAD, HELLO, SPLICE, DONE = range(4)

    def __init__(self, relay: SniRelay, conn, *, transparent: bool = False) -> None:
        self.relay = relay
        self.conn = conn
        self.transparent = transparent
        self.buf = bytearray()
        self.stage = self.HEAD
        self.eof = False
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.task: asyncio.Task | None = None
        self.client_ip = "0.0.0.0"
        self.host = ""
        self.dst = ("", 0)

    # -- protocol callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else "0.0.0.0"
        self.client_ip = ip[7:] if ip.startswith("::ffff:") else ip
        self.relay.stats.active += 1
        self.relay._fast.add(self)
        # One timer for the whole set-up: each stage only moves the deadline, and the timer
        # (at most `_tick` away) checks it when it fires. Most connections never see it fire.
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + self.relay.limits.head_timeout
        self.timer = loop.call_later(self._tick(), self._check)
        if self.transparent:
            # No CONNECT: the destination is where the client was going (SO_ORIGINAL_DST),
            # and the first bytes are a ClientHello or a plain HTTP request.
            dst = self.relay._redirected_dst(transport.get_extra_info("socket"))
            if dst is None:
                self.abort()  # not redirected, or a loop back to ourselves: refuse
                return
            self.dst = dst
            self.stage = self.HELLO
            self._rearm(self.relay.limits.hello_timeout)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            if self.stage == self.HEAD:
                self._head()
            if self.stage == self.HELLO:
                self._hello()
        except Exception:
            self.relay.stats.errors += 1
            log.exception("proxy connection failed")
            self.abort()

    def eof_received(self) -> bool:
        self.eof = True
        if self.stage in (self.HEAD, self.HELLO):
            if self.stage == self.HELLO:
                self.relay.stats.refused += 1  # closed before the ClientHello ended
            self.abort()
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stage in (self.HEAD, self.HELLO):
            self._release()  # a splice releases when its task ends

    # -- stages ----------------------------------------------------------------------------
    def _head(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > 4096 or not b"CONNECT ".startswith(bytes(self.buf[:8])):
                self._to_streams()
            return
        if not self.buf.startswith(b"CONNECT "):
            self._to_streams()
            return
        try:
            req = parse_head(bytes(self.buf[: end + 4]))
            host, port = _authority(req.target)
        except HttpError:
            self._to_streams()  # the stream code answers with the right status
            return
        if port not in self.relay.limits.connect_ports:
            self._to_streams()
            return
        del self.buf[: end + 4]
        self.host, self.dst = host, (host, port)
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.stage = self.HELLO
        self._rearm(self.relay.limits.hello_timeout)

    def _hello(self) -> None:
        buf = self.buf
        if self.transparent and buf[0] != 0x16:
            self._to_streams()  # plain HTTP: the stream code decides on Host and URL
            return
        # Reparse only once the first record is complete: byte by byte costs O(n), not O(n^2).
        if len(buf) < 5 or (buf[0] == 0x16 and len(buf) < 5 + int.from_bytes(buf[3:5], "big")):
            return
        relay = self.relay
        try:
            hello = parse(bytes(buf))
            if hello is None:
                if len(buf) > MAX_HELLO + 1024:
                    raise ClientHelloError("ClientHello too large")
                return
        except ClientHelloError:
            relay.stats.refused += 1
            self.abort()
            return
        decider = relay.decider
        names = _names(self.host, hello) or [self.dst[0]]
        client_ip = self.client_ip
        blocked = None
        for n in names:
            decision = decider.decide(decider.query(n, client_ip, "sni"))
            if decision.blocked:
                blocked = (n, decision)
                break
        name = hello.sni or self.host or self.dst[0]
        if relay.handoff is not None and decider.intercepts(client_ip, name):
            relay.stats.intercepted += 1
            first = bytes(buf)
            buf.clear()
            self._to_streams(
                lambda r, w: relay._handoff(r, w, first, client_ip, name, self.dst)
            )
            return
        if blocked is not None:
            n, decision = blocked
            relay.stats.refused += 1
            eventsink.record(relay.sink, decision, decider.query(n, client_ip, "sni"))
            self.transport.write(TLS_ALERT_ACCESS_DENIED)
            self.transport.close()
            return
        self.stage = self.SPLICE
        self.transport.pause_reading()
        first = bytes(buf)
        buf.clear()
        self.task = task = asyncio.get_running_loop().create_task(
            self._splice(*relay._upstream(self.host, self.dst), first)
        )
        relay._tasks.add(task)
        task.add_done_callback(relay._tasks.discard)

    async def _splice(self, host: str, port: int, first: bytes) -> None:
        relay = self.relay
        self._rearm(relay.limits.connect_timeout)
        try:
            try:
                upstream = await open_upstream(host, port)
            except OSError:
                return
            except Exception:
                relay.stats.errors += 1
                log.exception("proxy connection failed")
                return
            if self.transport.is_closing():
                upstream.close()
                return
            self._cancel_timer()
            relay.stats.spliced += 1
            # From here the pipe owns the transport and closes it when the splice ends.
            await upstream.run_transport(self.transport, first, client_eof=self.eof)
        finally:
            self.abort()
            self.relay._tasks.discard(self.task)  # ends now: nothing left once active is 0
            self._release()

    # -- hand-over to the stream code ------------------------------------------------------
    def _to_streams(self, handler=None) -> None:
        """Give the connection, and every byte not yet consumed, to the stream-based code."""
        loop = asyncio.get_running_loop()
        transport = self.transport
        self._release()
        self.stage = self.DONE
        reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
        proto = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if self.buf:
            reader.feed_data(bytes(self.buf))
            self.buf.clear()
        if self.eof:
            reader.feed_eof()
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        conn = self.conn if handler is None else self.relay._conn_handler(handler)
        transport.resume_reading()
        task = loop.create_task(conn(reader, writer))
        self.relay._tasks.add(task)  # conn() takes it out when it ends

    # -- bookkeeping -----------------------------------------------------------------------
    def _tick(self) -> float:
        limits = self.relay.limits
        return min(limits.head_timeout, limits.hello_timeout, limits.connect_timeout)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        left = self.deadline - loop.time()
        if left > 0:
            self.timer = loop.call_later(min(left, self._tick()), self._check)
            return
        self._timed_out()

    def _timed_out(self) -> None:
        self.timer = None
        self.relay.stats.timeouts += 1
        self.abort()
        if self.task is not None:
            self.task.cancel()  # the upstream did not answer in time

    def _rearm(self, seconds: float) -> None:
        self.deadline = asyncio.get_running_loop().time() + seconds

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _release(self) -> None:
        if self in self.relay._fast:
            self.relay._fast.discard(self)
            self.relay.stats.active -= 1
        self._cancel_timer()

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


# -- helpers -------------------------------------------------------------------------------


async def _read_hello(reader: asyncio.StreamReader, buf: bytearray) -> ClientHello:
    while True:
        # Reparse only once the first record is complete: byte-by-byte costs O(n), not O(n^2).
        if len(buf) >= 5 and len(buf) < 5 + int.from_bytes(buf[3:5], "big") and buf[0] == 0x16:
            pass
        else:
            hello = parse(bytes(buf))
            if hello is not None:
                return hello
        if len(buf) > MAX_HELLO + 1024:
            raise ClientHelloError("ClientHello too large")
        chunk = await reader.read(CHUNK)
        if not chunk:
            raise ClientHelloError("closed before the ClientHello ended")
        buf += chunk


def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def _names(connect_host: str | None, hello: ClientHello) -> list[str]:
    names: list[str] = []
    if hello.sni:
        names.append(hello.sni)
    if connect_host and connect_host not in names and not (is_ip(connect_host) and names):
        names.append(connect_host)
    return names


def _authority(target: str) -> tuple[str, int]:
    host_part, sep, port_s = target.rpartition(":")
    if not sep or not port_s.isdigit() or not (0 < int(port_s) < 65536):
        raise HttpError(400, "CONNECT needs host:port")
    host = normalize_host(host_part.strip("[]") if host_part.startswith("[") else host_part)
    if host is None:
        raise HttpError(400, "bad CONNECT host")
    return host, int(port_s)


def _peer_ip(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    ip = peer[0] if peer else "0.0.0.0"
    if ip.startswith("::ffff:"):
        ip = ip[7:]
    return ip


def original_dst(sock: socket.socket | None) -> tuple[str, int] | None:
    """The address a redirected connection was really for (netfilter's SO_ORIGINAL_DST)."""
    if sock is None:
        return None
    try:
        if sock.family == socket.AF_INET6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
            port = struct.unpack_from("!H", raw, 2)[0]
            return str(ipaddress.IPv6Address(raw[8:24])), port
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return None
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port


async def _copy_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    while n > 0:
        data = await reader.read(min(n, CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", n)
        writer.write(data)
        n -= len(data)
        await writer.drain()


def _request_head(req: Request, path: str) -> bytes:
    drop = HOP_BY_HOP | {
        v.strip().lower() for k, v in req.headers if k.lower() == "connection" for v in v.split(",")
    }
    lines = [f"{req.method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in req.headers if k.lower() not in drop]
    if req.header("host") is None:
        lines.append(f"Host: {split_absolute(req.target)[1]}")
    lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _origin_form(req: Request, path: str) -> Request:
    return Request(req.method, path, req.version, req.headers)


async def _send(writer: asyncio.StreamWriter, resp: Response, *, keep_alive: bool) -> None:
    writer.write(
        response(
            resp.status,
            resp.body,
            content_type=resp.content_type,
            headers=resp.all_headers(),
            keep_alive=keep_alive,
        )
    )
    await writer.drain()


async def relay_response(
    ur: asyncio.StreamReader, cw: asyncio.StreamWriter, req: Request
) -> tuple[bool, bool]:
    """Relay one response; returns (upstream reusable, client connection may continue)."""
    while True:
        try:
            raw = await ur.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise HttpError(502, "upstream response head too large") from exc
        except asyncio.IncompleteReadError as exc:
            raise HttpError(502, "upstream closed") from exc
        lines = raw[:-4].split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
            raise HttpError(502, "bad upstream status line")
        code = int(status[1])
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise HttpError(502, "bad upstream header")
            headers.append((name.decode("latin-1").strip(), value.strip().decode("latin-1")))
        if 100 <= code < 200 and code != 101:
            cw.write(raw)
            continue
        break
    lower = [(k.lower(), v) for k, v in headers]
    conn = ",".join(v for k, v in lower if k == "connection").lower()
    te = ",".join(v for k, v in lower if k == "transfer-encoding").lower()
    lengths = {v for k, v in lower if k == "content-length"}
    up_keep = "close" not in conn and status[0] == b"HTTP/1.1"
    if req.method == "HEAD" or code in (204, 304) or code < 200:
        framing, length = "none", 0
    elif "chunked" in te:
        framing, length = "chunked", 0
    elif len(lengths) == 1 and next(iter(lengths)).isdigit():
        framing, length = "length", int(next(iter(lengths)))
    elif lengths:
        raise HttpError(502, "conflicting upstream Content-Length")
    else:
        framing, length, up_keep = "close", 0, False
    client_keep = framing != "close"
    drop = {"connection", "keep-alive", "proxy-connection"} | {t.strip() for t in conn.split(",")}
    out = [lines[0].decode("latin-1")]
    out += [f"{k}: {v}" for k, v in headers if k.lower() not in drop]
    out.append(f"Connection: {'keep-alive' if client_keep else 'close'}")
    cw.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
    if framing == "length":
        await _copy_exact(ur, cw, length)
    elif framing == "chunked":
        await _copy_chunked(ur, cw)
    elif framing == "close":
        await _pipe_to_eof(ur, cw)
    await cw.drain()
    return up_keep, client_keep


async def _copy_chunked(ur: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
    while True:
        line = await ur.readuntil(b"\r\n")
        cw.write(line)
        size_s = line.split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError as exc:
            raise HttpError(502, "bad chunk size") from exc
        if size == 0:
            while True:  # trailers, then the final blank line
                trailer = await ur.readuntil(b"\r\n")
                cw.write(trailer)
                if trailer == b"\r\n":
                    return
        await _copy_exact(ur, cw, size + 2)


async def _pipe_to_eof(ur: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
    while data := await ur.read(CHUNK):
        cw.write(data)
        await cw.drain()


def _lang(req: Request) -> str:
    return choose_lang(None, req.header("accept-language"))
