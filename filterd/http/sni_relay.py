"""The lean proxy in front: decide on CONNECT host / TLS SNI / Host+URL, then splice.

The common case, an allowed TLS connection of a group that does not intercept,
costs one ClientHello parse, one engine decision and a byte-for-byte splice: the
client sees the real server's certificate and nothing enters mitmproxy. Blocked
TLS connections are refused after the ClientHello with a fatal TLS alert. Only a
group that opted into interception is handed to the embedded mitmproxy.

Two listeners: explicit (browsers configured or PAC/WPAD: CONNECT and absolute
http:// URLs) and transparent (nftables redirect; the original destination comes
from SO_ORIGINAL_DST; TLS or plain HTTP told apart by the first byte).

One concern per file: this one holds the relay and its stream-based handlers;
relay_fast.py the protocol-level fast path, relay_conn.py the connection helpers
(ClientHello, names, original destination), relay_http.py plain HTTP forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from filterd.http import eventsink
from filterd.http.blockapp import MAX_FORM, BlockApp
from filterd.http.clienthello import ClientHelloError, looks_like_tls
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
    split_absolute,
)
from filterd.http.pipe import open_upstream, splice_streams
from filterd.http.relay_conn import (
    TLS_ALERT_ACCESS_DENIED,
    _authority,
    _deadline,
    _names,
    _peer_ip,
    _read_hello,
    original_dst,
)
from filterd.http.relay_fast import _FastConnect
from filterd.http.relay_http import (
    _copy_exact,
    _origin_form,
    _request_head,
    _send,
    relay_response,
)
from filterd.policy.decision import Decision, Query

log = logging.getLogger(__name__)

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
