"""Answer cache: TTLs honoured with a floor and a cap, negative caching per RFC 2308.

With `stale_for` > 0, an expired entry is kept that many more seconds so the
resolver can answer from it when every upstream fails (serve-stale, RFC 8767);
it is never returned by `get()`, only by `get_stale()`, and eviction takes
expired entries first.

An upstream answer is kept as bytes (the records after the question, the
upstream's OPT removed) plus the offsets of every TTL, so a hit is rendered by
copying bytes and patching the TTLs down by the entry's age.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from filterd.dns import fastpath, wire
from filterd.dns.wire import AD, Layout, Rcode

_U32 = struct.Struct("!I")


class Entry:
    """A normalized answer: upstream flags and records, ready to render for any client."""

    __slots__ = ("body", "counts", "expires", "flags", "hit", "last_age", "last_body",
                 "lifetime", "prefetch_age", "stored_at", "ttl_offsets", "ttls")

    def __init__(self, flags: int, counts: tuple[int, int, int], body: bytes,
                 ttl_offsets: tuple[int, ...], ttls: tuple[int, ...]) -> None:
        self.flags = flags
        self.counts = counts
        self.body = body
        self.ttl_offsets = ttl_offsets
        self.ttls = ttls
        self.stored_at = 0.0
        self.expires = 0.0
        self.lifetime = 0
        self.prefetch_age = 0   # a hit at this age or older refreshes the entry (0 = never)
        self.last_age = 0
        self.last_body = body
        self.hit = False   # used since it was last passed over by eviction (CLOCK)

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @classmethod
    def from_response(cls, data: bytes, lay: Layout) -> Entry:
        """Normalize an upstream response scanned by wire.scan_response.

        Upstream's OPT is dropped (the client gets ours). Compression pointers in the
        records stay valid because the question we put back has the same length.
        """
        if lay.opt_start >= 0 and lay.opt_end != len(data):
            # OPT in the middle: removing it would shift names that later records point at.
            from filterd.dns.codec import repack_without_opt

            data = repack_without_opt(data)
            lay = wire.scan_response(data)
        end = lay.opt_start if lay.opt_start >= 0 else len(data)
        body = bytes(data[lay.question_end:end])
        offsets, ttls = fastpath.ttl_fields(data, lay)
        rcode = lay.rcode if lay.rcode < 16 else Rcode.SERVFAIL
        return cls((lay.flags & (AD | wire.TC | 0x0400)) | rcode, lay.counts, body, offsets, ttls)

    def body_capped(self, age: int, cap: int) -> bytes:
        """The aged records with no TTL above `cap` (a time rule changes the verdict then)."""
        buf = bytearray(self.body)
        pack = _U32.pack_into
        for off, ttl in zip(self.ttl_offsets, self.ttls, strict=True):
            pack(buf, off, min(ttl - age if ttl > age else 0, cap))
        return bytes(buf)

    def body_with_ttl(self, ttl: int) -> bytes:
        """The records with every TTL set to `ttl` (a stale answer's, RFC 8767 4)."""
        buf = bytearray(self.body)
        for off in self.ttl_offsets:
            _U32.pack_into(buf, off, ttl)
        return bytes(buf)

    # Rendering is part of the fast path (filterd/dns/_pure.py, _speedups.pyx):
    # body_at(age) -> the records with TTLs aged;
    # render(q, age=0, limit=65535, *, body=None, options=b"") -> the answer for q: its ID
    # and question, our OPT (carrying `options`), TTLs aged or `body` instead (a stale
    # answer's records); TC if over `limit`.
    body_at = fastpath.body_at
    render = fastpath.render


class AnswerCache:
    """A bounded map from (name, type, DO[, rewrite target]) to Entry."""

    def __init__(self, max_entries: int = 100_000, min_ttl: int = 0, max_ttl: int = 86400,
                 negative_ttl_max: int = 3600, clock: Callable[[], float] = time.monotonic,
                 *, stale_for: int = 0, prefetch_min_ttl: int = 0) -> None:
        if (max_entries < 0 or min_ttl < 0 or max_ttl < min_ttl or negative_ttl_max < 0
                or stale_for < 0 or prefetch_min_ttl < 0):
            raise ValueError("bad cache limits")
        # Seconds an expired entry stays usable for serve-stale (0 = off).
        self.stale_for = stale_for
        # Entries living at least this long are refreshed when asked for in the last tenth
        # of their life (unbound's prefetch); 0 = off.
        self.prefetch_min_ttl = prefetch_min_ttl
        self.max_entries = max_entries
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.negative_ttl_max = negative_ttl_max
        self.clock = clock
        self._map: OrderedDict[Hashable, Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._map)

    def clear(self) -> None:
        self._map.clear()

    def lifetime(self, entry: Entry, min_ttl: int | None, negative_ttl: int | None) -> int:
        """Seconds to keep `entry`; 0 means do not cache."""
        if entry.flags & wire.TC:
            return 0
        rcode = entry.rcode
        if rcode == Rcode.NOERROR and entry.counts[0]:
            ttl = min_ttl if min_ttl is not None else 0
            return min(max(ttl, self.min_ttl), self.max_ttl)
        if rcode in (Rcode.NOERROR, Rcode.NXDOMAIN):
            # RFC 2308 5: negative answers are cached for min(SOA TTL, SOA MINIMUM);
            # without an SOA they are not cached at all.
            if negative_ttl is None:
                return 0
            return min(max(negative_ttl, self.min_ttl), self.negative_ttl_max)
        return 0   # SERVFAIL, REFUSED...: never cached

    def put(self, key: Hashable, entry: Entry, lay: Layout) -> int:
        life = self.lifetime(entry, lay.min_ttl, lay.negative_ttl)
        if life <= 0 or not self.max_entries:
            return 0
        now = self.clock()
        entry.stored_at = now
        entry.expires = now + life
        entry.lifetime = life
        entry.prefetch_age = (life - life // 10 if self.prefetch_min_ttl
                              and life >= self.prefetch_min_ttl else 0)
        # Records are never shown with more TTL than the time we keep them.
        entry.ttls = tuple(min(t, life) for t in entry.ttls)
        entry.last_age = -1
        m = self._map
        m.pop(key, None)
        if len(m) >= self.max_entries:
            self._evict(now)
        m[key] = entry
        return life

    def _evict(self, now: float) -> None:
        """Free one entry: CLOCK (second chance) over insertion order.

        An expired entry goes at once; one used since the hand last passed is moved
        to the back instead, so a busy name is not pushed out by a stream of one-off
        names (cache misses), as plain insertion order would do. One entry per insert,
        in O(1) (an OrderedDict): freeing 1/64 of a full cache at once, with a scan
        from the front of a plain dict, held the query path for about a millisecond
        every 150 misses.
        """
        m = self._map
        for _ in range(8):   # bounded: a cache that is all hot still frees one
            key, entry = m.popitem(last=False)
            if entry.hit and entry.expires > now:
                entry.hit = False
                m[key] = entry
                continue
            return
        m.popitem(last=False)

    def get(self, key: Hashable) -> tuple[Entry, int] | None:
        """The entry and its age in whole seconds, or None when absent or expired."""
        entry = self._map.get(key)
        if entry is None:
            self.misses += 1
            return None
        now = self.clock()
        if now >= entry.expires:
            if now >= entry.expires + self.stale_for:
                del self._map[key]
            self.misses += 1
            return None
        self.hits += 1
        entry.hit = True
        return entry, int(now - entry.stored_at)

    def get_stale(self, key: Hashable) -> Entry | None:
        """An expired entry still within `stale_for` seconds of its expiry, else None."""
        entry = self._map.get(key)
        if entry is None:
            return None
        now = self.clock()
        if now >= entry.expires + self.stale_for:
            del self._map[key]
            return None
        return entry

