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
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

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

    @property
    def label(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def healthy(self, now: float) -> bool:
        return now >= self.down_until

    def ok(self, rtt: float) -> None:
        metrics.UPSTREAM_LATENCY.observe(rtt, upstream=self.label)
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


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError("upstream did not answer in time"))


class _UdpChannel(asyncio.DatagramProtocol):
    """One connected UDP socket to one upstream, matching answers to pending queries."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[asyncio.Future, bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) < 12:
            return
        qid = (data[0] << 8) | data[1]
        item = self.pending.get(qid)
        if item is None:
            return   # late, duplicate or spoofed
        fut, question = item
        if not data[2] & 0x80 or data[12:12 + len(question)].lower() != question:
            return
        self.pending.pop(qid, None)
        if not fut.done():
            fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: every query on it has failed.
        for fut, _ in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(ConnectionRefusedError(str(exc)))
        self.pending.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.error_received(exc or ConnectionError("closed"))

    def new_id(self) -> int:
        for _ in range(100):
            qid = random.getrandbits(16)
            if qid not in self.pending:
                return qid
        raise UpstreamError("too many queries in flight")


class UpstreamPool:
    def __init__(self, servers: Sequence[tuple[str, int]], timeout: float = 2.0,
                 sockets_per_upstream: int = 4) -> None:
        if not servers:
            raise ValueError("no upstream resolvers configured")
        if timeout <= 0:
            raise ValueError("upstream timeout must be positive")
        self.health = [UpstreamHealth((h, int(p))) for h, p in servers]
        self.timeout = timeout
        self.sockets_per_upstream = sockets_per_upstream
        self._channels: list[list[_UdpChannel]] = [[] for _ in self.health]

    async def _channel(self, i: int) -> _UdpChannel:
        chans = self._channels[i]
        if len(chans) < self.sockets_per_upstream:
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_datagram_endpoint(
                _UdpChannel, remote_addr=self.health[i].address)
            chans.append(proto)
            return proto
        chan = random.choice(chans)
        if chan.transport is None or chan.transport.is_closing():
            chans.remove(chan)
            return await self._channel(i)
        return chan

    def close(self) -> None:
        for chans in self._channels:
            for c in chans:
                if c.transport is not None:
                    c.transport.close()
            chans.clear()

    def order(self, now: float) -> list[int]:
        idx = range(len(self.health))
        up = [i for i in idx if self.health[i].healthy(now)]
        return up + [i for i in idx if not self.health[i].healthy(now)]

    async def resolve(self, q: Question) -> tuple[bytes, Layout]:
        """Ask upstreams in order until one answers; raise UpstreamError if none does."""
        fallback: tuple[bytes, Layout] | None = None
        for i in self.order(time.monotonic()):
            h = self.health[i]
            start = time.monotonic()
            try:
                data = await self._udp(i, q)
                lay = wire.scan_response(data)
                if lay.flags & wire.TC:
                    data = await self._tcp(h.address, q)
                    lay = wire.scan_response(data)
            except (TimeoutError, OSError, BadQuery, UpstreamError, struct.error) as exc:
                log.debug("upstream %s failed for %s: %r", h.address, q.name, exc)
                h.fail(time.monotonic())
                continue
            if lay.rcode in (Rcode.SERVFAIL, Rcode.REFUSED):
                # Answered, but not usefully: try the next one, keep this in case none does better.
                h.ok(time.monotonic() - start)
                fallback = fallback or (data, lay)
                continue
            h.ok(time.monotonic() - start)
            return data, lay
        if fallback is not None:
            return fallback
        raise UpstreamError(f"no upstream answered for {q.name}")

    async def _udp(self, i: int, q: Question) -> bytes:
        chan = await self._channel(i)
        qid = chan.new_id()
        fut = asyncio.get_running_loop().create_future()
        chan.pending[qid] = (fut, q.question.lower())
        # A timer instead of asyncio.wait_for, which wraps every query in one more task.
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, fut)
        try:
            chan.transport.sendto(upstream_query(q, qid))  # type: ignore[union-attr]
            return await fut
        finally:
            timer.cancel()
            chan.pending.pop(qid, None)

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
        return [{"address": f"{h.address[0]}:{h.address[1]}", "healthy": h.healthy(now),
                 "answered": h.answered, "failed": h.failed, "rtt_ms": round(h.rtt * 1000, 2)}
                for h in self.health]
