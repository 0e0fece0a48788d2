"""The DNS fast path in pure Python: the reference twin of `_speedups.pyx`.

What lives here is codec, cache and loop, never a rule: parsing the question
out of a query, the two-generation maps behind the answer memo and the
verdict table, the client -> group table (filled with the engine's answers),
rendering a cached answer with its TTLs aged, assembling the answers filterd
makes itself, and the UDP loop that answers a repeated query
from the memo and hands everything else to `Resolver.handle`.

`_speedups.pyx` has the same API and must give the same bytes for the same
input (tests/dns/test_fastpath.py sends both the same packets). Change one,
change the other. `filterd.dns.fastpath` chooses between them at import.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from time import monotonic
from typing import Any

from filterd.dns.edns import DO_BIT, OPT, OUR_UDP_SIZE, EdnsFormatError, parse_opt
from filterd.dns.wire import (
    AD,
    CD,
    HEADER,
    MAX_NAME,
    QR,
    RA,
    RD,
    TC,
    TYPE_SOA,
    BadQuery,
    Drop,
    Layout,
    Question,
    Rcode,
    read_name,
)

IMPLEMENTATION = "pure"

log = logging.getLogger("filterd.dns.server")

UDP_BATCH = 64   # datagrams per wake-up: keeps TCP and timers served under load

OPCODE_NOTIFY = 4
_OPT_FIXED = struct.Struct("!HHBBHH")   # type, udp size, ext rcode, version, flags, rdlen
_U32 = struct.Struct("!I")
_RR_FIXED = struct.Struct("!HHIH")   # type, class, ttl, rdlength


# ---------------------------------------------------------------------------
# The question


def parse_query(data: bytes) -> Question:
    """Parse a query; raise Drop (no answer) or BadQuery (answer with its rcode)."""
    n = len(data)
    if n < 12:
        raise Drop("shorter than a DNS header")
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & QR:
        raise Drop("a response, not a query")
    if flags & TC:
        raise BadQuery(Rcode.FORMERR, "a query with the TC bit")
    if flags & 0x7800:
        # NOTIFY is a real opcode we choose not to serve (as unbound does); the rest we lack.
        opcode = (flags >> 11) & 0xF
        raise BadQuery(Rcode.REFUSED if opcode == OPCODE_NOTIFY else Rcode.NOTIMP,
                       f"opcode {opcode} not implemented")
    if qdcount != 1:
        raise BadQuery(Rcode.FORMERR, "QDCOUNT is not 1")
    if ancount or nscount:
        raise BadQuery(Rcode.FORMERR, "a query with answer or authority records")
    if arcount > 1:
        raise BadQuery(Rcode.FORMERR, "more than one additional record")
    pos = 12
    labels = []
    total = 0
    while True:
        if pos >= n:
            raise BadQuery(Rcode.FORMERR, "question name runs past the message")
        length = data[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            # Nothing precedes the question to point at: a pointer here is garbage.
            raise BadQuery(Rcode.FORMERR, "compressed or extended label in the question")
        end = pos + length
        total += length + 1
        if end > n or total > MAX_NAME - 1:
            raise BadQuery(Rcode.FORMERR, "bad question name")
        labels.append(data[pos:end])
        pos = end
    if pos + 4 > n:
        raise BadQuery(Rcode.FORMERR, "question truncated")
    qtype = (data[pos] << 8) | data[pos + 1]
    qclass = (data[pos + 2] << 8) | data[pos + 3]
    pos += 4
    name = b".".join(labels).lower().decode("latin-1") if labels else ""
    q = Question(qid, flags, name, qtype, qclass, bytes(data[12:pos]), None)
    if arcount:
        try:
            q.edns = _parse_additional(data, pos)
        except BadQuery as exc:
            exc.question = q
            raise
        except EdnsFormatError as exc:
            raise BadQuery(Rcode.FORMERR, str(exc), q) from None
        if q.edns is not None and q.edns.version != 0:
            raise BadQuery(Rcode.BADVERS, "EDNS version not supported", q)
    return q


def _parse_additional(data: bytes, pos: int) -> Any:
    start = pos
    fixed = read_name(data, pos)
    if fixed + 10 > len(data):
        raise BadQuery(Rcode.FORMERR, "additional record truncated")
    rtype = (data[fixed] << 8) | data[fixed + 1]
    rdlen = (data[fixed + 8] << 8) | data[fixed + 9]
    if fixed + 10 + rdlen > len(data):
        raise BadQuery(Rcode.FORMERR, "additional record RDATA truncated")
    if rtype != OPT:
        # We sign nothing and verify nothing (TSIG, SIG(0)): such a query is not for us.
        raise BadQuery(Rcode.FORMERR, "additional record other than OPT")
    return parse_opt(data, start, fixed)


# ---------------------------------------------------------------------------
# Upstream answers


def scan_response(data: bytes) -> Layout:
    """Walk every record of a response; raise BadQuery(FORMERR) if it is malformed."""
    n = len(data)
    if n < 12:
        raise BadQuery(Rcode.FORMERR, "response shorter than a header")
    lay = Layout()
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    lay.id = qid
    lay.flags = flags
    pos = 12
    for _ in range(qd):
        pos = read_name(data, pos) + 4
        if pos > n:
            raise BadQuery(Rcode.FORMERR, "question truncated")
    lay.question_end = pos
    ext_rcode = 0
    kept = [0, 0, 0]
    for section, count in enumerate((an, ns, ar)):
        for _ in range(count):
            start = pos
            fixed = read_name(data, pos)
            if fixed + 10 > n:
                raise BadQuery(Rcode.FORMERR, "record truncated")
            rtype, _rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, fixed)
            pos = fixed + 10 + rdlen
            if pos > n:
                raise BadQuery(Rcode.FORMERR, "RDATA truncated")
            if rtype == OPT and section == 2:
                if lay.opt_start >= 0:
                    raise BadQuery(Rcode.FORMERR, "two OPT records")
                lay.opt_start, lay.opt_end = start, pos
                ext_rcode = data[fixed + 4]
                continue
            kept[section] += 1
            if ttl > 0x7FFFFFFF:   # RFC 2181 8: treat as zero
                ttl = 0
            lay.ttl_offsets.append(fixed + 4)
            if section < 2:
                lay.min_ttl = ttl if lay.min_ttl is None else min(lay.min_ttl, ttl)
            if section == 1 and rtype == TYPE_SOA and rdlen >= 22:
                minimum = _U32.unpack_from(data, pos - 4)[0]
                neg = min(ttl, minimum)
                lay.negative_ttl = neg if lay.negative_ttl is None else min(lay.negative_ttl, neg)
    lay.counts = (kept[0], kept[1], kept[2])
    lay.rcode = (ext_rcode << 4) | (flags & 0xF)
    return lay



def ttl_fields(data: bytes, lay: Layout) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The TTL offsets relative to the question's end and the TTLs (capped at 2^31 - 1)."""
    qend = lay.question_end
    # Tuples, not lists: the cyclic GC stops tracking a tuple of ints, so a full cache
    # costs a full collection one object per entry instead of three.
    offsets = tuple(o - qend for o in lay.ttl_offsets)
    ttls = tuple(min(_U32.unpack_from(data, o)[0], 0x7FFFFFFF) for o in lay.ttl_offsets)
    return offsets, ttls


# ---------------------------------------------------------------------------
# Answers filterd assembles itself


def build_opt(do: bool = False, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """An OPT RR (root owner, our UDP size) carrying `options` (already encoded)."""
    return b"\x00" + _OPT_FIXED.pack(OPT, OUR_UDP_SIZE, ext_rcode, 0, DO_BIT if do else 0,
                                     len(options)) + options


def opt_for(q: Question, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """Our OPT record for an answer to `q`, or b"" when the client did not use EDNS."""
    edns = q.edns
    if edns is None:
        return b""
    return build_opt(edns.do, ext_rcode, options)


def answer(q: Question, rcode: int, an: int = 0, ns: int = 0, records: bytes = b"",
           options: bytes = b"", extra_flags: int = 0) -> bytes:
    """Header, the client's question, `records` (an + ns of them) and our OPT if EDNS.

    Rcodes above 15 go into the OPT (RFC 6891); without EDNS they become FORMERR.
    `extra_flags` adds header bits (TC for a truncated answer).
    """
    ext = 0
    if rcode > 15:
        if q.edns is None:
            rcode = Rcode.FORMERR
        else:
            ext = rcode >> 4
            rcode &= 0xF
    opt = opt_for(q, ext, options)
    flags = QR | RA | (q.flags & (RD | CD | 0x7800)) | (rcode & 0xF) | extra_flags
    return b"".join((HEADER.pack(q.id, flags, 1, an, ns, 1 if opt else 0), q.question,
                     records, opt))


# ---------------------------------------------------------------------------
# Cached answers


def body_at(entry: Any, age: int) -> bytes:
    """The entry's records with every TTL `age` seconds lower (never below 0)."""
    if age == entry.last_age:
        return entry.last_body
    buf = bytearray(entry.body)
    pack = _U32.pack_into
    for off, ttl in zip(entry.ttl_offsets, entry.ttls, strict=True):
        pack(buf, off, ttl - age if ttl > age else 0)
    out = bytes(buf)
    entry.last_age = age
    entry.last_body = out
    return out


def render(entry: Any, q: Question, age: int = 0, limit: int = 65535, *,
           body: bytes | None = None, options: bytes = b"") -> bytes:
    """The answer for `q`: its ID and question, our OPT, TTLs aged; TC if over `limit`.

    `body` replaces the aged records (stale answers), `options` go in our OPT.
    """
    eflags = entry.flags
    flags = QR | RA | (q.flags & (RD | CD)) | (eflags & 0xF)
    edns = q.edns
    if eflags & AD and ((edns is not None and edns.do) or q.flags & AD):  # RFC 6840 5.8
        flags |= AD
    opt = build_opt(edns.do, 0, options) if edns is not None else b""
    an, ns, ar = entry.counts
    msg = b"".join((HEADER.pack(q.id, flags, 1, an, ns, ar + (1 if opt else 0)),
                    q.question, body_at(entry, age) if body is None else body, opt))
    if len(msg) > limit:
        return answer(q, Rcode.NOERROR, extra_flags=TC)
    return msg


# ---------------------------------------------------------------------------
# Two-generation maps: the answer memo and the verdict table


class Recent:
    """A map of entries that live about a second: tuples whose first item is their expiry.

    At most 2 x max_entries entries are held: the bound is what keeps one-off names
    (random blocked names, cache misses) from costing memory nothing reuses.
    """

    __slots__ = ("_cur", "_dying", "_old", "lifetime", "max_entries", "rotate_at")

    def __init__(self, lifetime: float = 1.0, max_entries: int = 5_000) -> None:
        if lifetime < 0 or max_entries < 0:
            raise ValueError("memo lifetime and size must not be negative")
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._cur: dict[Any, tuple] = {}
        self._old: dict[Any, tuple] = {}
        self._dying: dict[Any, tuple] = {}
        self.rotate_at = 0.0

    @property
    def enabled(self) -> bool:
        return self.lifetime > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._cur) + len(self._old)

    def clear(self) -> None:
        self._cur = {}
        self._old = {}
        self._dying = {}

    def get(self, key: Any, now: float) -> Any:
        hit = self._cur.get(key)
        if hit is None:
            hit = self._old.get(key)
            if hit is None:
                return None
        return hit if hit[0] > now else None

    def put(self, key: Any, entry: tuple, now: float) -> None:
        cur = self._cur
        dying = self._dying
        if dying:
            # Freed a few at a time: 5,000 entries freed at once (answers, decisions and
            # their queries) held the query path for 1-2 ms once a second.
            for _ in range(4):
                if not dying:
                    break
                dying.popitem()
        if now >= self.rotate_at or len(cur) >= self.max_entries:
            # Nothing in the old generation outlives a lifetime: it is all expired now.
            self._dying = self._old
            self._old = cur
            self._cur = cur = {}
            self.rotate_at = now + self.lifetime
        cur[key] = entry


class AnswerMemo(Recent):
    """Whole UDP answers by (client address, query bytes after the ID): MemoEntry values."""

    __slots__ = ()


class GroupTable:
    """Client address -> the id of its group, as the policy engine said: a table the
    resolver fills from `Engine.client_group` and clears with every new engine (a
    reload). Not a rule: what group an address is in is only ever the engine's answer.

    Bounded: when `max_entries` addresses are held, the next put starts it again.
    """

    __slots__ = ("_map", "max_entries")

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 0:
            raise ValueError("group table size must not be negative")
        self.max_entries = max_entries
        self._map: dict[Any, Any] = {}

    def __len__(self) -> int:
        return len(self._map)

    def clear(self) -> None:
        self._map = {}

    def get(self, ip: Any) -> Any:
        return self._map.get(ip)

    def put(self, ip: Any, group: Any) -> None:
        if self.max_entries <= 0:
            return
        if len(self._map) >= self.max_entries:
            self._map = {}
        self._map[ip] = group


KIND_BLOCKED = 1   # filterd/dns/memo.py: what a memo entry's answer is
KIND_CACHED = 2


class Replay:
    """`Resolver.replay`: a memo hit's answer without its ID, counted and logged like any
    other answer; None if the client is over its rate limit (UDP: silence).

    Reads the resolver's stats, rate limit, cache and event sink at each call, so
    swapping one of them takes effect at once.
    """

    __slots__ = ("resolver",)

    def __init__(self, resolver: Any) -> None:
        self.resolver = resolver

    def __call__(self, hit: tuple, client_ip: str) -> bytes | None:
        r = self.resolver
        stats = r.stats
        stats["queries"] += 1
        limit = r.rate_limit
        if limit is not None and not limit.allow(client_ip):
            stats["rate_limited"] += 1
            return None   # as handle() does on UDP: silence
        kind = hit[2]
        out = hit[1]
        if kind == KIND_BLOCKED:
            stats["blocked"] += 1
        elif kind == KIND_CACHED:
            cache = r.cache
            cache.hits += 1
            if len(hit) > 5 and hit[7]:
                # (..., entry, age, start, end): the records' TTLs aged to now, as
                # Entry.render would give them (the memo keeps the answer a second).
                entry = hit[5]
                age = int(cache.clock() - entry.stored_at)
                if age != hit[6]:
                    out = out[:hit[7]] + body_at(entry, age) + out[hit[8]:]
        r.events.record(hit[3], hit[4])
        return out


# ---------------------------------------------------------------------------
# The UDP loop


def _log_failure(client: str) -> None:
    log.exception("query from %s failed", client)


class UdpLoop:
    """Drains a non-blocking UDP socket: memo hits answered here, the rest by `handle`.

    `handle(data, client_ip, False)` returns bytes (sent), None (nothing sent) or
    something pending, given to `later(result, addr)`. `replay(hit, client_ip)`
    counts and logs a memo hit and returns its answer without the ID (None: silence).
    `failed(client_ip)` is called inside the `except` when handle() raises.
    """

    def __init__(self, sock: socket.socket, memo: AnswerMemo | None,
                 handle: Callable[[bytes, str, bool], Any],
                 replay: Callable[[tuple, str], bytes | None],
                 later: Callable[[Any, tuple], None],
                 failed: Callable[[str], None] | None = None) -> None:
        self.sock = sock
        self.memo = memo if memo is not None and memo.enabled else None
        self.handle = handle
        self.replay = replay
        self.later = later
        self.failed = failed if failed is not None else _log_failure

    def readable(self) -> None:
        """The event loop's reader callback: drain with one clock read for the batch."""
        self.drain(monotonic())

    def drain(self, now: float) -> int:
        """Read up to UDP_BATCH datagrams (one clock read for the batch); the count read."""
        recv = self.sock.recvfrom
        send = self.sock.sendto
        handle = self.handle
        memo = self.memo
        memo_get = memo.get if memo is not None else None
        replay = self.replay
        got = 0
        for _ in range(UDP_BATCH):
            try:
                data, addr = recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue   # an ICMP error queued on the socket: about a client, not for us
            got += 1
            if memo_get is not None:
                # The same bytes from the same client a moment ago: the same answer.
                hit = memo_get((addr[0], data[2:]), now)
                if hit is not None:
                    tail = replay(hit, addr[0])
                    if tail is not None:
                        try:  # noqa: SIM105 - suppress() costs more than the send here
                            send(data[:2] + tail, addr)
                        except OSError:
                            pass
                    continue
            try:
                res = handle(data, addr[0], False)
            except Exception:
                self.failed(addr[0])   # inside the except: it can log the traceback
                continue
            if res is None:
                continue
            if type(res) is bytes:
                try:  # noqa: SIM105 - suppress() costs more than the send on this path
                    send(res, addr)
                except OSError:
                    pass   # send buffer full or client gone: UDP, the client retries
            else:
                self.later(res, addr)
        return got


__all__ = [
    "IMPLEMENTATION",
    "AnswerMemo",
    "GroupTable",
    "Recent",
    "Replay",
    "UdpLoop",
    "answer",
    "body_at",
    "build_opt",
    "opt_for",
    "parse_query",
    "render",
    "scan_response",
    "ttl_fields",
]
