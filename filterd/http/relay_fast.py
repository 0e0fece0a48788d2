"""The explicit and transparent listeners' fast path: CONNECT and TLS handled at the
protocol level (no streams or task until the splice); anything else is handed to the
stream code of SniRelay with every byte received."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from filterd.http import eventsink
from filterd.http.clienthello import MAX_HELLO, ClientHelloError, parse
from filterd.http.http11 import (
    STREAM_LIMIT,
    HttpError,
    parse_head,
)
from filterd.http.pipe import open_upstream
from filterd.http.relay_conn import (
    TLS_ALERT_ACCESS_DENIED,
    _authority,
    _names,
)

if TYPE_CHECKING:
    from filterd.http.sni_relay import SniRelay

log = logging.getLogger(__name__)

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
