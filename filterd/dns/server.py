"""UDP and TCP listeners (RFC 7766 pipelining) around a Resolver.

Nothing a client sends can crash a listener: every packet is handled inside
its own try, and a TCP connection that sends nonsense is closed, not waited on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Sequence

from filterd.dns import fastpath
from filterd.dns.resolver import Pending, Resolver
from filterd.faultlog import Throttled

log = logging.getLogger(__name__)
# Once with its traceback, then counted (a bug every query hits must not flood the log).
_errors = Throttled(log, "listener")

# Strong references to pending answers: the loop keeps only weak ones to tasks.
_pending: set[asyncio.Future] = set()


def _spawn(coro: object) -> None:
    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    _pending.add(task)
    task.add_done_callback(_pending.discard)

TCP_IDLE_TIMEOUT = 10.0        # RFC 7766 6.2.3: seconds, not minutes
TCP_MAX_CONNECTIONS = 512
TCP_MAX_INFLIGHT = 64          # per connection; reading pauses beyond this
MIN_FRAME = 12                 # a frame shorter than a DNS header ends the connection
RCVBUF = 4 * 1024 * 1024       # absorbs bursts (e.g. while a reload builds the new engine)
UDP_BATCH = fastpath.UDP_BATCH  # datagrams per wake-up: keeps TCP and timers served under load


class UdpListener:
    """A UDP socket read straight from the event loop's reader callback.

    No transport object in between: each wake-up drains up to UDP_BATCH datagrams
    (`fastpath.UdpLoop`: recvmmsg/sendmmsg in the compiled module, recvfrom/sendto
    in its twin), answers memo hits there and hands the rest to `Resolver.handle`.
    This is the hot loop; a transport's per-datagram bookkeeping costs more than
    the parsing.
    """

    def __init__(self, sock: socket.socket, resolver: Resolver) -> None:
        self.sock = sock
        self.resolver = resolver
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self._udp = fastpath.UdpLoop(sock, resolver.memo, resolver.handle, resolver.replay,
                                     self._pending, self._failed)
        # The loop's own method is the reader callback: no Python frame per wake-up
        # between the event loop and the compiled loop.
        self.loop.add_reader(sock.fileno(), self._udp.readable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    @staticmethod
    def _failed(client: str) -> None:
        # Called inside the loop's `except`: the traceback is the handle() that failed.
        _errors.exception("query from %s failed", client)

    def _pending(self, res: object, addr: tuple) -> None:
        if type(res) is Pending:
            res.start(lambda out, addr=addr: self._reply(out, addr))
        else:
            _spawn(self._later(res, addr))

    def _reply(self, out: bytes | None, addr: tuple) -> None:
        if out is not None and not self.closed:
            with contextlib.suppress(OSError):
                self.sock.sendto(out, addr)

    async def _later(self, res: object, addr: tuple) -> None:
        try:
            out = await res  # type: ignore[misc]
        except Exception:
            _errors.exception("query from %s failed", addr[0])
            return
        if out is not None and not self.closed:
            with contextlib.suppress(OSError):
                self.sock.sendto(out, addr)


class TcpServer(asyncio.Protocol):
    """One client connection: frames in, answers out in completion order (RFC 7766 6.2.1.1)."""

    connections = 0

    def __init__(self, resolver: Resolver, idle_timeout: float = TCP_IDLE_TIMEOUT) -> None:
        self.resolver = resolver
        self.idle_timeout = idle_timeout
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.inflight = 0
        self.paused = False
        self.eof = False
        self.client = ""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        TcpServer.connections += 1
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        if TcpServer.connections > TCP_MAX_CONNECTIONS:
            transport.abort()  # type: ignore[attr-defined]
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        TcpServer.connections -= 1
        if self._timer is not None:
            self._timer.cancel()
        self.transport = None

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.idle_timeout, self._idle)

    def _idle(self) -> None:
        if self.transport is not None:
            if self.inflight:
                self._arm()
            else:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._arm()
        buf = self.buf
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if size < MIN_FRAME:
                self._abort()
                return
            if len(buf) < 2 + size:
                break   # wait for the rest; the idle timer closes a frame that never completes
            frame = bytes(buf[2:2 + size])
            del buf[:2 + size]
            self._query(frame)
            if self.transport is None:
                return
        if self.inflight >= TCP_MAX_INFLIGHT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        # Half-close: finish the answers still pending, then close.
        return bool(self.inflight)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _query(self, frame: bytes) -> None:
        try:
            res = self.resolver.handle(frame, self.client, True)
        except Exception:
            _errors.exception("TCP query from %s failed", self.client)
            self._abort()
            return
        if res is None:
            return
        if type(res) is bytes:
            self._send(res)
        else:
            self.inflight += 1
            _spawn(self._later(res))

    async def _later(self, res: object) -> None:
        try:
            out = await res  # type: ignore[misc]
        except Exception:
            _errors.exception("TCP query from %s failed", self.client)
            out = None
        self.inflight -= 1
        if out is not None:
            self._send(out)
        if self.transport is None:
            return
        if self.paused and self.inflight < TCP_MAX_INFLIGHT // 2:
            self.paused = False
            self.transport.resume_reading()
        if self.eof and not self.inflight:
            self.transport.close()

    def _send(self, msg: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(msg)) + msg)


def _socket(host: str, port: int, kind: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if kind == socket.SOCK_DGRAM:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class Listeners:
    """The sockets one worker serves on."""

    def __init__(self) -> None:
        self.udp: list[UdpListener] = []
        self.tcp: list[asyncio.AbstractServer] = []
        self.addresses: list[tuple[str, int]] = []

    def close(self) -> None:
        for t in self.udp:
            t.close()
        for s in self.tcp:
            s.close()


async def serve(resolver: Resolver, listen: Sequence[tuple[str, int]], *,
                reuse_port: bool = False,
                tcp_idle_timeout: float = TCP_IDLE_TIMEOUT) -> Listeners:
    """Listen on UDP and TCP at every address (port 0: TCP takes the port UDP got)."""
    loop = asyncio.get_running_loop()
    out = Listeners()
    for host, wanted in listen:
        for attempt in range(20):
            usock = _socket(host, wanted, socket.SOCK_DGRAM, reuse_port)
            port = usock.getsockname()[1]
            try:
                tsock = _socket(host, port, socket.SOCK_STREAM, reuse_port)
                break
            except OSError:
                usock.close()
                if wanted or attempt == 19:   # a configured port is taken: say so
                    raise
        out.udp.append(UdpListener(usock, resolver))
        tsock.listen(1024)
        server = await loop.create_server(lambda: TcpServer(resolver, tcp_idle_timeout),
                                          sock=tsock)
        out.tcp.append(server)
        out.addresses.append((host, port))
    return out
