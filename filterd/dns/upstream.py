"""Forwarding to upstream resolvers: timeouts, failover, health, TCP on truncation.

Upstreams are tried in configured order, healthy ones first; one that keeps
failing is marked down for a back-off period and tried only when no healthy
one is left, so it recovers as soon as it answers again. Each upstream gets
several UDP sockets (random source ports) and random query IDs, and an answer
is only accepted if its ID and question match what we sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from filterd import metrics
from filterd.dns import wire
from filterd.dns.edns import build_opt
from filterd.dns.wire import CD, RD, BadQuery, Layout, Question, Rcode
from filterd.errors import FilterdError

log = logging.getLogger(__name__)

FAILURES_BEFORE_DOWN = 3
MAX_BACKOFF = 30.0


class UpstreamError(FilterdError):
    """No upstream gave a usable answer."""


def upstream_query(q: Question, qid: int) -> bytes:
    """Our query for `q`: fresh ID, RD, the client's CD and DO bits, and no client options.

    Building our own OPT (instead of copying the client's) is what strips EDNS
    Client Subnet and every other option that could identify the client.
    """
    return (wire.HEADER.pack(qid, RD | (q.flags & CD), 1, 0, 0, 1) + q.question
            + build_opt(do=q.do))


@dataclass
class UpstreamHealth:
    address: tuple[str, int]
    failures: int = 0
    down_until: float = 0.0
    answered: int = 0
    failed: int = 0
    rtt: float = 0.0
    _observe: Callable[[float], None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Bound once: every forwarded query's latency comes through ok().
        self._observe = metrics.UPSTREAM_LATENCY.observer(upstream=self.label)

    @property
    def label(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def ok(self, rtt: float) -> None:
        self._observe(rtt)
        self.failures = 0
        self.down_until = 0.0
        self.answered += 1
        self.rtt = rtt if not self.rtt else 0.8 * self.rtt + 0.2 * rtt

    def fail(self, now: float) -> None:
        metrics.UPSTREAM_ERRORS.inc(upstream=self.label)
        self.failures += 1
        self.failed += 1
        if self.failures >= FAILURES_BEFORE_DOWN:
            backoff = min(MAX_BACKOFF, 2.0 ** (self.failures - FAILURES_BEFORE_DOWN))
            self.down_until = now + backoff


Done = Callable[[bytes | None, Layout | None, BaseException | None], None]


class _UdpChannel:
    """One connected, non-blocking UDP socket to one upstream, read from the loop directly.

    No transport or protocol object: the reader callback drains the socket and hands
    each matching answer to the attempt waiting for its ID.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, address: tuple[str, int]) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise
        self.loop = loop
        self.pending: dict[int, _Attempt] = {}
        self.closed = False
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self._fail_all(ConnectionError("closed"))

    def _fail_all(self, exc: BaseException) -> None:
        pending, self.pending = self.pending, {}
        for attempt in pending.values():
            attempt.failed(exc)

    def _readable(self) -> None:
        recv = self.sock.recv
        for _ in range(64):
            try:
                data = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port unreachable on a connected socket: every query on it has failed.
                self._fail_all(exc)
                return
            if len(data) < 12 or not data[2] & 0x80:
                continue
            attempt = self.pending.get((data[0] << 8) | data[1])
            if attempt is None:
                continue   # late, duplicate or spoofed
            question = attempt.question
            if data[12:12 + len(question)].lower() != question:
                continue
            del self.pending[attempt.qid]
            attempt.answered(data)

    def new_id(self) -> int:
        for _ in range(100):
            qid = random.getrandbits(16)
            if qid not in self.pending:
                return qid
        raise UpstreamError("too many queries in flight")


class _Attempt:
    """One query's way through the upstreams, in order, driven by callbacks (no task)."""

    __slots__ = ("chan", "done", "fallback", "order", "pool", "q", "qid", "question",
                 "sent_at", "timer", "upstream")

    def __init__(self, pool: UpstreamPool, q: Question, done: Done, order: list[int]) -> None:
        self.pool = pool
        self.q = q
        self.question = q.question.lower()
        self.done = done
        self.order = order
        self.fallback: tuple[bytes, Layout] | None = None
        self.chan: _UdpChannel | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.qid = -1
        self.upstream = -1
        self.sent_at = 0.0

    def next(self) -> None:
        pool = self.pool
        while self.order and not pool.closed:
            i = self.order.pop(0)
            self.upstream = i
            try:
                chan = pool._channel(i)
                qid = chan.new_id()
                self.sent_at = time.monotonic()
                chan.sock.send(upstream_query(self.q, qid))
            except (OSError, UpstreamError) as exc:
                log.debug("upstream %s failed for %s: %r", pool.health[i].address,
                          self.q.name, exc)
                pool.health[i].fail(time.monotonic())
                continue
            self.chan, self.qid = chan, qid
            chan.pending[qid] = self
            self.timer = chan.loop.call_later(pool.timeout, self.expired)
            return
        if self.fallback is not None:
            self.done(*self.fallback, None)
        else:
            self.done(None, None, UpstreamError(f"no upstream answered for {self.q.name}"))

    def _stop_waiting(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.chan is not None:
            self.chan.pending.pop(self.qid, None)
            self.chan = None

    def expired(self) -> None:
        self.timer = None
        self.failed(TimeoutError("upstream did not answer in time"))

    def failed(self, exc: BaseException) -> None:
        self._stop_waiting()
        h = self.pool.health[self.upstream]
        log.debug("upstream %s failed for %s: %r", h.address, self.q.name, exc)
        h.fail(time.monotonic())
        self.next()

    def answered(self, data: bytes) -> None:
        self._stop_waiting()
        try:
            lay = wire.scan_response(data)
        except (BadQuery, struct.error) as exc:
            self.failed(exc)
            return
        if lay.flags & wire.TC and not self.pool.encrypted[self.upstream]:
            # Rare: the answer needs TCP. A task for this one only.
            task = asyncio.ensure_future(self._over_tcp())
            _tcp_tasks.add(task)
            task.add_done_callback(_tcp_tasks.discard)
            return
        self.usable(data, lay)

    async def _over_tcp(self) -> None:
        h = self.pool.health[self.upstream]
        try:
            data = await self.pool._tcp(h.address, self.q)
            lay = wire.scan_response(data)
        except (TimeoutError, OSError, BadQuery, UpstreamError, struct.error) as exc:
            self.failed(exc)
            return
        self.usable(data, lay)

    def usable(self, data: bytes, lay: Layout) -> None:
        h = self.pool.health[self.upstream]
        h.ok(time.monotonic() - self.sent_at)
        if lay.rcode in (Rcode.SERVFAIL, Rcode.REFUSED):
            # Answered, but not usefully: try the next one, keep this in case none does better.
            self.fallback = self.fallback or (data, lay)
            self.next()
            return
        self.done(data, lay, None)


# Strong references to the rare TCP retries (the loop keeps only weak ones to tasks).
_tcp_tasks: set[asyncio.Task] = set()


class UpstreamPool:
    def __init__(self, servers: Sequence[tuple[str, int]], timeout: float = 2.0,
                 sockets_per_upstream: int = 4, ca_file: str | None = None) -> None:
        if not servers:
            raise ValueError("no upstream resolvers configured")
        if timeout <= 0:
            raise ValueError("upstream timeout must be positive")
        self.health = [UpstreamHealth((h, int(p))) for h, p in servers]
        self.timeout = timeout
        self.sockets_per_upstream = sockets_per_upstream
        self._channels: list[list[_UdpChannel]] = [[] for _ in self.health]
        self.closed = False
        # Encrypted upstreams (servers given as config.UpstreamSpec): one channel each,
        # made by upstream_tls / upstream_https (see transports.py).
        self.specs = list(servers)
        self.encrypted = [getattr(s, "transport", "udp") != "udp" for s in servers]
        self.ca_file = ca_file

    def _channel(self, i: int) -> _UdpChannel:
        chans = self._channels[i]
        if self.encrypted[i]:
            if not chans or chans[0].closed:
                from filterd.dns.transports import encrypted_channel

                chans[:] = [encrypted_channel(self.specs[i], self.timeout, self.ca_file)]
            return chans[0]
        if len(chans) < self.sockets_per_upstream:
            chan = _UdpChannel(asyncio.get_running_loop(), self.health[i].address)
            chans.append(chan)
            return chan
        chan = random.choice(chans)
        if chan.closed:
            chans.remove(chan)
            return self._channel(i)
        return chan

    def close(self) -> None:
        self.closed = True   # attempts failed by the closing sockets ask no further upstream
        for chans in self._channels:
            for c in chans:
                c.close()
            chans.clear()

    def order(self, now: float) -> list[int]:
        idx = range(len(self.health))
        up = [i for i in idx if self.health[i].healthy(now)]
        return up + [i for i in idx if not self.health[i].healthy(now)]

    def query(self, q: Question, done: Done) -> None:
        """Ask upstreams in order; call `done(data, layout, None)` or `done(None, None, error)`.

        The query path's way in: callbacks, no task or future per query. `done` is
        called exactly once: later, or before this returns when no upstream can even be
        asked (every send failed, or the pool is closed).
        """
        attempt = _Attempt(self, q, done, self.order(time.monotonic()))
        if attempt.order:
            attempt.next()
        else:
            attempt.done(None, None, UpstreamError("no upstream configured"))

    async def resolve(self, q: Question) -> tuple[bytes, Layout]:
        """Ask upstreams in order until one answers; raise UpstreamError if none does."""
        fut: asyncio.Future[tuple[bytes, Layout]] = asyncio.get_running_loop().create_future()

        def done(data: bytes | None, lay: Layout | None, exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result((data, lay))  # type: ignore[arg-type]

        self.query(q, done)
        return await fut

    async def _tcp(self, address: tuple[str, int], q: Question) -> bytes:
        qid = random.getrandbits(16)
        msg = upstream_query(q, qid)

        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection(*address)
            try:
                writer.write(struct.pack("!H", len(msg)) + msg)
                await writer.drain()
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                return await reader.readexactly(size)
            finally:
                writer.close()

        try:
            data = await asyncio.wait_for(exchange(), self.timeout)
        except asyncio.IncompleteReadError as exc:
            raise UpstreamError("TCP answer truncated") from exc
        if (len(data) < 12 or struct.unpack_from("!H", data)[0] != qid
                or data[12:12 + len(q.question)].lower() != q.question.lower()):
            raise UpstreamError("TCP answer does not match the query")
        return data

    def status(self) -> list[dict[str, object]]:
        now = time.monotonic()
        out: list[dict[str, object]] = [
            {"address": f"{h.address[0]}:{h.address[1]}", "healthy": h.healthy(now),
             "answered": h.answered, "failed": h.failed, "rtt_ms": round(h.rtt * 1000, 2)}
            for h in self.health]
        for i, row in enumerate(out):   # encrypted ones: how, and why the last connect failed
            if self.encrypted[i]:
                spec = self.specs[i]
                row["transport"] = spec.transport  # type: ignore[attr-defined]
                chans = self._channels[i]
                row["error"] = chans[0].last_error if chans else ""  # type: ignore[attr-defined]
        return out
