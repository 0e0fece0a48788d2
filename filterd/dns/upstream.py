"""Forwarding to upstream resolvers: timeouts, failover, health, TCP on truncation.

Upstreams are tried in configured order, healthy ones first; one that keeps
failing is marked down for a back-off period and tried only when no healthy
one is left, by at most PROBES_WHILE_DOWN queries at a time (the others get
SERVFAIL at once), so it recovers as soon as it answers again and an outage of
any length costs neither memory nor waiting. Each upstream gets
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
from filterd.faultlog import Throttled

log = logging.getLogger(__name__)

FAILURES_BEFORE_DOWN = 3
MAX_BACKOFF = 30.0
# Doublings of the back-off that enter the arithmetic (2**5 s > MAX_BACKOFF): an outage's
# failure count grows for hours and must never be raised to a power (2.0**1030 overflows).
MAX_DOUBLINGS = 5
# Client queries in flight at once to an upstream that is down. They are its probes: the
# first answer brings it back; every other query gets SERVFAIL at once instead of waiting
# out a timeout on a link that is not there.
PROBES_WHILE_DOWN = 2
# While an upstream stays down, one summary line this often (the count since the last).
SUMMARY_EVERY = 300.0

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
    """One upstream's state: up, or down since a moment with a back-off before a probe.

    Down after FAILURES_BEFORE_DOWN failures in a row; up again at its first answer.
    A state change is one log line and the `filterd_upstream_up` gauge; while down,
    one summary line every SUMMARY_EVERY seconds. No counter here enters arithmetic
    that can overflow: the back-off uses at most MAX_DOUBLINGS doublings.
    """

    address: tuple[str, int]
    failures: int = 0          # in a row, capped (see fail())
    down_until: float = 0.0    # back-off: not first in the order, nor probed, before this
    down_since: float | None = None
    answered: int = 0
    failed: int = 0
    shed: int = 0              # queries not sent because it was down and probes were out
    inflight: int = 0
    rtt: float = 0.0
    _observe: Callable[[float], None] = field(init=False, repr=False, compare=False)
    _since_summary: int = field(default=0, init=False, repr=False)
    _down_failed: int = field(default=0, init=False, repr=False)
    _next_summary: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        # Bound once: every forwarded query's latency comes through ok().
        self._observe = metrics.UPSTREAM_LATENCY.observer(upstream=self.label)
        metrics.UPSTREAM_UP.set(1, upstream=self.label)

    @property
    def label(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def ok(self, rtt: float) -> None:
        self._observe(rtt)
        if self.down_since is not None:
            log.warning("upstream %s answers again after %.0f s down (%d queries it did not "
                        "answer meanwhile)", self.label,
                        time.monotonic() - self.down_since, self._down_failed)
            self.down_since = None
            metrics.UPSTREAM_UP.set(1, upstream=self.label)
        self.failures = 0
        self.down_until = 0.0
        self.answered += 1
        self.rtt = rtt if not self.rtt else 0.8 * self.rtt + 0.2 * rtt

    def fail(self, now: float, why: object = None) -> None:
        metrics.UPSTREAM_ERRORS.inc(upstream=self.label)
        self.failed += 1
        # Capped: only the first MAX_DOUBLINGS past the threshold change the back-off.
        self.failures = min(self.failures + 1, FAILURES_BEFORE_DOWN + MAX_DOUBLINGS)
        if self.failures < FAILURES_BEFORE_DOWN:
            return
        doublings = min(self.failures - FAILURES_BEFORE_DOWN, MAX_DOUBLINGS)
        self.down_until = now + min(MAX_BACKOFF, float(1 << doublings))
        if self.down_since is None:
            self.down_since = now
            self._down_failed = 0
            self._since_summary = 0
            self._next_summary = now + SUMMARY_EVERY
            metrics.UPSTREAM_UP.set(0, upstream=self.label)
            log.warning("upstream %s is down (%d failures in a row, the last: %s); queries "
                        "it would answer get SERVFAIL until it answers again", self.label,
                        self.failures, _why(why))
        self.lost(now)

    def lost(self, now: float) -> None:
        """A query that got no answer because this upstream is down (counted, summarized)."""
        self._down_failed += 1
        self._since_summary += 1
        if now >= self._next_summary and self.down_since is not None:
            log.warning("upstream %s still down after %.0f s: %d queries it did not answer "
                        "in the last %.0f s", self.label, now - self.down_since,
                        self._since_summary, SUMMARY_EVERY)
            self._since_summary = 0
            self._next_summary = now + SUMMARY_EVERY

    def may_probe(self) -> bool:
        """Whether one more client query may go to it now that it is down."""
        return self.inflight < PROBES_WHILE_DOWN


def _why(exc: object) -> str:
    if exc is None:
        return "unknown"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


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

    def close(self, exc: BaseException | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self._fail_all(exc or ConnectionError("closed"))

    def _fail_all(self, exc: BaseException) -> None:
        pending, self.pending = self.pending, {}
        for attempt in pending.values():
            attempt.guarded(attempt.failed, exc)

    def _readable(self) -> None:
        # A loop callback: nothing may escape it (it would skip the rest of the batch and
        # leave their queries unanswered). The attempts guard themselves; this guards the rest.
        try:
            self._drain()
        except Exception:
            _callback_errors.exception("reading upstream answers failed")

    def _drain(self) -> None:
        recv = self.sock.recv
        for _ in range(64):
            try:
                data = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port unreachable on a connected socket: every query on it has failed.
                # The socket is dropped, not reused: after an error uvloop stops watching it
                # (its answers would never be read again), and a fresh one costs nothing.
                self.close(exc)
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
            attempt.guarded(attempt.answered, data)

    def new_id(self) -> int:
        for _ in range(100):
            qid = random.getrandbits(16)
            if qid not in self.pending:
                return qid
        raise UpstreamError("too many queries in flight")


class _Attempt:
    """One query's way through the upstreams, in order, driven by callbacks (no task).

    `done` is called exactly once, whatever happens: every way in from the loop (an
    answer, a timeout, a socket error) goes through `guarded`, which ends the attempt
    with the error if anything unexpected is raised, so no query is left unanswered
    and no entry or timer is left behind.
    """

    __slots__ = ("chan", "done", "fallback", "finished", "order", "pool", "q", "qid",
                 "question", "sent_at", "timer", "upstream")

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
        self.finished = False

    def guarded(self, step: Callable[..., None], *args: object) -> None:
        try:
            step(*args)
        except Exception as exc:
            _callback_errors.exception("an upstream query failed unexpectedly")
            self._stop_waiting()
            self.finish(None, None, exc)

    def finish(self, data: bytes | None, lay: Layout | None, exc: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        self.order = []
        try:
            self.done(data, lay, exc)
        except Exception:
            _callback_errors.exception("answering a forwarded query failed")

    def next(self) -> None:
        pool = self.pool
        now = time.monotonic()
        shed = None
        while self.order and not pool.closed:
            i = self.order.pop(0)
            h = pool.health[i]
            if h.down and not h.may_probe():
                # Down, and enough queries already probe it: do not queue behind a link
                # that is not there; the next upstream, or SERVFAIL now.
                h.shed += 1
                h.lost(now)
                shed = h
                continue
            self.upstream = i
            chan = None
            try:
                chan = pool._channel(i)
                qid = chan.new_id()
                self.sent_at = time.monotonic()
                chan.sock.send(upstream_query(self.q, qid))
            except Exception as exc:   # OSError, UpstreamError; anything else is still a failure
                log.debug("upstream %s failed for %s: %r", h.address, self.q.name, exc)
                if isinstance(chan, _UdpChannel) and isinstance(exc, OSError):
                    chan.close(exc)   # as on a read error (see _drain): a fresh socket next
                h.fail(time.monotonic(), exc)
                continue
            self.chan, self.qid = chan, qid
            chan.pending[qid] = self
            h.inflight += 1
            self.timer = chan.loop.call_later(pool.timeout, self.guarded, self.expired)
            return
        if self.fallback is not None:
            self.finish(*self.fallback, None)
        elif shed is not None:
            self.finish(None, None, UpstreamError(
                f"upstream {shed.label} is down; {self.q.name} not forwarded"))
        else:
            self.finish(None, None, UpstreamError(f"no upstream answered for {self.q.name}"))

    def _stop_waiting(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.chan is not None:
            self.chan.pending.pop(self.qid, None)
            self.chan = None
            self.pool.health[self.upstream].inflight -= 1

    def expired(self) -> None:
        self.timer = None
        self.failed(TimeoutError("upstream did not answer in time"))

    def failed(self, exc: BaseException) -> None:
        self._stop_waiting()
        h = self.pool.health[self.upstream]
        log.debug("upstream %s failed for %s: %r", h.address, self.q.name, exc)
        h.fail(time.monotonic(), exc)
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
            self.guarded(self.failed, exc)
            return
        self.guarded(self.usable, data, lay)

    def usable(self, data: bytes, lay: Layout) -> None:
        h = self.pool.health[self.upstream]
        h.ok(time.monotonic() - self.sent_at)
        if lay.rcode in (Rcode.SERVFAIL, Rcode.REFUSED):
            # Answered, but not usefully: try the next one, keep this in case none does better.
            self.fallback = self.fallback or (data, lay)
            self.next()
            return
        self.finish(data, lay, None)


# What escapes a loop callback here is a bug: logged once with its traceback, then counted.
_callback_errors = Throttled(log, "upstream")

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
        """Healthy first, then the ones in back-off. An upstream whose back-off has run out
        counts as healthy again (half-open): the next queries probe it, at most
        PROBES_WHILE_DOWN at a time while it is still down."""
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
            attempt.guarded(attempt.next)
        else:
            attempt.finish(None, None, UpstreamError("no upstream configured"))

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
             "up": not h.down, "answered": h.answered, "failed": h.failed, "shed": h.shed,
             "inflight": h.inflight, "rtt_ms": round(h.rtt * 1000, 2)}
            for h in self.health]
        for i, row in enumerate(out):   # encrypted ones: how, and why the last connect failed
            if self.encrypted[i]:
                spec = self.specs[i]
                row["transport"] = spec.transport  # type: ignore[attr-defined]
                chans = self._channels[i]
                row["error"] = chans[0].last_error if chans else ""  # type: ignore[attr-defined]
        return out
