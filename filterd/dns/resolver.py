"""The query pipeline, independent of transport: parse, decide, answer or forward.

`handle()` returns bytes at once for everything answered locally (blocks,
errors, cache hits), None for packets never answered, or an awaitable for a
query that needs an upstream. The engine is read once per query from
`self.engine`, so a reload swaps it between two queries and none is lost.

Two things happen to upstream answers here, before they are cached:
- ECH (svcb.py): for a group not in `keep_ech_groups`, SVCB/HTTPS answers lose
  their `ech` parameter at cache-insert time (`_fetched`); such answers are cached
  under their own key (variant bit ECH_STRIPPED), so a group that keeps ECH never
  gets a stripped copy and a filtered group never gets an unstripped one.
- Serve-stale (RFC 8767): when every upstream fails, an entry expired less than
  `cache.stale_for` seconds ago is answered with TTL 30 and EDE 3 (Stale Answer);
  an entry asked for in the last tenth of its life is refreshed in the background
  (prefetch), so a popular name never expires in front of a child.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Hashable
from datetime import UTC, datetime
from time import monotonic
from typing import Any, Protocol

from filterd.dns import codec, fastpath, svcb, wire
from filterd.dns.answers import BlockAnswers
from filterd.dns.cache import AnswerCache, Entry
from filterd.dns.edns import OUR_UDP_SIZE, ede_option
from filterd.dns.memo import (
    KIND_BLOCKED,
    KIND_CACHED,
    KIND_LOCAL,
    AnswerMemo,
    Recent,
)
from filterd.dns.ratelimit import RateLimiter
from filterd.dns.upstream import UpstreamError, UpstreamPool
from filterd.dns.wire import (
    CD,
    CLASS_IN,
    RD,
    TYPE_ANY,
    TYPE_AXFR,
    TYPE_IXFR,
    BadQuery,
    Drop,
    Question,
    Rcode,
)
from filterd.faultlog import Throttled
from filterd.policy.decision import Action, Decision, Query
from filterd.words.explain import Words

log = logging.getLogger(__name__)
# A fault that lasts must not log a line per query: the first, then counts (see faultlog).
_errors = Throttled(log, "resolver")
_unusable = Throttled(log, "upstream_answer")

_parse_query = fastpath.parse_query

# Meta types a query may not ask for (RFC 6895 3.1: OPT, TSIG, TKEY, MAILA, MAILB, 128-248...).
_FORMERR_TYPES = frozenset({41, 249, 250, 253, 254, *range(128, 249)})
_REFUSED_TYPES = frozenset({TYPE_AXFR, TYPE_IXFR})

# A decision is reused for the same (client, name, type) this long. Short enough that a
# schedule boundary or an expiring override shows within a second; a reload clears them all.
DECISION_TTL = 1.0
# About 1 KB an entry with its query and decision. Only names asked again within
# DECISION_TTL gain from it, and UDP repeats of the same bytes are answered from the memo
# before it: what is left is TCP and the same question in other bytes (EDNS, case), so a
# thousand is plenty, while one-off names (random blocked names, cache misses) would
# otherwise fill memory that nothing reuses.
DECISION_CACHE_MAX = 1_000
# Client addresses whose group is remembered (a school's devices; past it, it starts again).
GROUP_TABLE_MAX = 8_192
# Whole answers remembered per generation (see memo.py): the names a school asks again
# within a second, per device.
MEMO_MAX = 4_000


# Cache-key variant bit: SVCB/HTTPS answers with `ech` removed (see svcb.py).
ECH_STRIPPED = 4
# RFC 8767 4: a stale answer's TTL; EDE 3 tells an EDNS client what it got.
STALE_TTL = 30
EDE_STALE_ANSWER = 3
# RFC 8767 5 ("client response timer"): a name whose entry has expired is answered stale
# after this long if the upstream has not answered yet; the query goes on and refreshes
# the cache when the answer comes.
STALE_ANSWER_AFTER = 1.8


def _words_for(engine: Any) -> Words | None:
    """The engine's words for the EDE text (None for stand-in engines without a catalog)."""
    return Words.for_engine(engine) if hasattr(engine, "catalog") else None


def _variant(q: Question) -> int:
    """The part of the cache key besides name and type: DO and CD change the answer."""
    return (2 if q.flags & CD else 0) | (1 if q.edns is not None and q.edns.do else 0)


class Stale(UpstreamError):
    """Every upstream failed and the answer comes from an expired entry (RFC 8767)."""


class DecisionEngine(Protocol):
    def decide(self, query: Query) -> Decision: ...


class EventSink(Protocol):
    def record(self, decision: Decision, query: Query) -> None: ...


class _NoEvents:
    def record(self, decision: Decision, query: Query) -> None:
        pass


Fetched = Callable[[Entry | None, BaseException | None], None]


class Pending:
    """An answer waiting for an upstream.

    Awaitable (TCP, tests), or `start(reply)` with a callback: the UDP listener's
    way, which costs no task per cache miss.
    """

    __slots__ = ("cap", "key", "limit", "q", "resolver")

    def __init__(self, resolver: Resolver, q: Question, key: Hashable, limit: int,
                 cap: float | None = None) -> None:
        self.resolver = resolver
        self.q = q
        self.key = key
        self.limit = limit
        self.cap = cap     # the Decision's valid_until (Unix time), see Resolver.ttl_cap

    def start(self, reply: Callable[[bytes], None]) -> None:
        r, q, limit, cap = self.resolver, self.q, self.limit, self.cap
        r.fetch(q, self.key, lambda entry, exc: reply(r.reply_for(q, limit, entry, exc, cap)))

    def __await__(self) -> Generator[Any, None, bytes | None]:
        return self.resolver._forward_async(self.q, self.key, self.limit, self.cap).__await__()


class Resolver:
    def __init__(self, engine: DecisionEngine, upstreams: UpstreamPool, *,
                 cache: AnswerCache | None = None, answers: BlockAnswers | None = None,
                 events: EventSink | None = None, rate_limit: RateLimiter | None = None,
                 rewrite_ttl: int | None = None, decision_ttl: float = DECISION_TTL,
                 keep_ech_groups: frozenset[str] | set[str] = frozenset(),
                 wall_clock: Callable[[], float] = time.time) -> None:
        # The time decisions are made at (Query.at) and TTL caps are counted from; tests
        # pass a clock they move.
        self.wall_clock = wall_clock
        # (group, name, type) -> (expires, query, decision): the engine's own verdicts,
        # shared by the devices of a group (see _decide); (client, name, type) for a client
        # whose group the engine does not fix (MAC-based groups, stand-in engines).
        self._decisions = Recent(decision_ttl, DECISION_CACHE_MAX)
        self.decision_ttl = decision_ttl
        # client address -> the key part of its verdicts: its group id (the engine's
        # answer), or the address itself. Cleared with every new engine.
        self.groups = fastpath.GroupTable(GROUP_TABLE_MAX)
        self._engine = engine
        self._client_group = getattr(engine, "client_group", None)
        self.upstreams = upstreams
        self.cache = cache if cache is not None else AnswerCache()
        self.answers = answers if answers is not None else BlockAnswers()
        self.answers.words = _words_for(engine)
        self.events: EventSink = events if events is not None else _NoEvents()
        self.rate_limit = rate_limit
        self.rewrite_ttl = rewrite_ttl if rewrite_ttl is not None else self.answers.ttl
        self._inflight: dict[Hashable, list[Fetched]] = {}
        # Groups whose HTTPS filterd does not filter by name: their SVCB/HTTPS keep `ech`.
        self.keep_ech_groups = frozenset(keep_ech_groups)
        self.stale_answer_after = STALE_ANSWER_AFTER
        self._stale_timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._late: set[Hashable] = set()   # in flight past stale_answer_after
        # Whole UDP answers for repeated queries (see memo.py); never longer than a decision.
        self.memo = AnswerMemo(decision_ttl, MEMO_MAX)
        # replay(hit, client_ip): a memo hit's answer without its ID, counted and logged;
        # None if rate limited (part of the fast path: the UDP loop calls it natively).
        self.replay = fastpath.Replay(self)
        self.stats = {"queries": 0, "dropped": 0, "errors": 0, "blocked": 0, "forwarded": 0,
                      "servfail": 0, "rate_limited": 0, "ech_stripped": 0, "stale": 0,
                      "prefetched": 0}

    @property
    def engine(self) -> DecisionEngine:
        return self._engine

    @engine.setter
    def engine(self, engine: DecisionEngine) -> None:
        """Swap the engine between two queries; no decision of the old one is reused."""
        self._engine = engine
        self._client_group = getattr(engine, "client_group", None)
        self.answers.words = _words_for(engine)
        self._decisions.clear()
        self.groups.clear()
        self.memo.clear()

    def decide(self, client_ip: str, name: str, qtype: int) -> tuple[Query, Decision]:
        query, decision, _ = self._decide(client_ip, name, qtype, monotonic())
        return query, decision

    def _decide(self, client_ip: str, name: str, qtype: int, now: float
                ) -> tuple[Query, Decision, float]:
        """The decision, its query and the moment it stops being reused.

        A verdict is the engine's for a group, a name and a moment (Decision carries no
        device): when the engine says a client's group holds until the next engine
        (`client_group`), the verdict is kept under the group, and the next device of
        the class asking the same name within the second gets it too, with a Query of
        its own (its event names it). Otherwise it is kept under the client.
        """
        group = self.groups.get(client_ip)
        if group is None:
            group = self._group_key(client_ip)
        key = (group, name, qtype)
        hit = self._decisions.get(key, now)
        if hit is not None:
            until = hit[2].valid_until
            # A time rule's moment is wall-clock time: a verdict is not reused past it
            # even when the wall clock moved faster than the monotonic one (a step).
            if until is None or self.wall_clock() < until.timestamp():
                query = hit[1]
                if query.client_ip != client_ip:
                    query = Query(name, client_ip, query.at, None, query.qtype)
                return query, hit[2], hit[0]
        wall = self.wall_clock()
        query = Query(name, client_ip, datetime.fromtimestamp(wall, UTC),
                      qtype=codec.type_name(qtype))
        decision = self._engine.decide(query)
        expires = now + self.decision_ttl
        if decision.valid_until is not None:   # not reused past the moment it may change
            expires = min(expires, now + max(0.0, decision.valid_until.timestamp() - wall))
        if self.decision_ttl > 0:
            self._decisions.put(key, (expires, query, decision), now)
        return query, decision, expires

    def _group_key(self, client_ip: str) -> str:
        """What a client's verdicts are kept under (see _decide), remembered until the
        next engine: its group id when the engine fixes it, else the address itself
        (group ids are letters, digits and `_`; an address always has `.` or `:`)."""
        key = client_ip
        ask = self._client_group
        if ask is not None:
            gid, stable = ask(client_ip)
            if stable:
                key = gid
        self.groups.put(client_ip, key)
        return key

    # -- the hot path ------------------------------------------------------

    def handle(self, data: bytes, client_ip: str, tcp: bool = False
               ) -> bytes | Awaitable[bytes | None] | None:
        stats = self.stats
        stats["queries"] += 1
        try:
            q = _parse_query(data)
        except Drop:
            stats["dropped"] += 1
            return None
        except BadQuery as exc:
            stats["errors"] += 1
            if exc.question is not None:
                return wire.error_answer(exc.question, exc.rcode)
            return wire.bare_error(data, exc.rcode)
        if self.rate_limit is not None and not self.rate_limit.allow(client_ip):
            stats["rate_limited"] += 1
            # UDP: silence (an answer would still cost us and could amplify); TCP: say so.
            return wire.error_answer(q, Rcode.REFUSED) if tcp else None
        qtype = q.qtype
        if qtype in _FORMERR_TYPES:
            return wire.error_answer(q, Rcode.FORMERR)
        if q.qclass != CLASS_IN or qtype in _REFUSED_TYPES:
            return wire.error_answer(q, Rcode.REFUSED)
        limit = 65535 if tcp else min(q.max_payload, OUR_UDP_SIZE)
        if not q.name:   # the root: no filter
            return self._answer(q, (q.name, qtype, _variant(q) | (
                ECH_STRIPPED if qtype in svcb.SVCB_TYPES else 0)), limit)
        now = monotonic()
        query, decision, expires = self._decide(client_ip, q.name, qtype, now)
        self.events.record(decision, query)
        # Remember UDP answers for repeats of these exact bytes (TCP pays a connection
        # anyway, and its size limit differs).
        memo = None if tcp or not self.memo.enabled else (client_ip, bytes(data[2:]))
        action = decision.action
        # TTL capping (issue 14): a verdict a time rule changes soon (an override ending, a
        # schedule boundary) is answered with no TTL beyond that moment; such answers are
        # not memoised (their TTL counts down to the moment, not with the cache).
        until = decision.valid_until
        cap = None if until is None else until.timestamp()
        if cap is not None:
            memo = None
        if action is Action.BLOCK:
            stats["blocked"] += 1
            out = self.answers.block(q, decision, self.ttl_cap(cap))
            if memo is not None:
                self.memo.put(memo, (expires, out[2:], KIND_BLOCKED, decision, query), now)
            return out
        if qtype == TYPE_ANY:
            out = self.answers.any_answer(q)
            if memo is not None:
                self.memo.put(memo, (expires, out[2:], KIND_LOCAL, decision, query), now)
            return out
        variant = _variant(q)
        if qtype in svcb.SVCB_TYPES and decision.group not in self.keep_ech_groups:
            variant |= ECH_STRIPPED
        if action is Action.REWRITE and decision.rewrite_target:
            target = decision.rewrite_target.rstrip(".").lower()
            key: Hashable = (q.name, qtype, variant, target)
            hit = self.cache.get(key)
            if hit is None:
                return self._rewrite_slow(q, target, key, limit, cap)
        else:
            key = (q.name, qtype, variant)
            hit = self.cache.get(key)
            if hit is None:
                return self._forward(q, key, limit, cap)
            entry, age = hit
            if entry.prefetch_age and age >= entry.prefetch_age:
                self._prefetch(q, key)
        entry, age = hit
        if cap is not None:
            return entry.render(q, age, limit, body=entry.body_capped(age, self.ttl_cap(cap)))
        out = entry.render(q, age, limit)
        if memo is not None:
            # Kept as long as the decision, or until the records expire: a replay ages
            # the records' TTLs again (fastpath.Replay), so the bytes stay exact. `start`
            # and `end` are where the records are in the answer without its ID (0, 0 for
            # a truncated answer, which has none).
            left = entry.expires - self.cache.clock()
            start = 10 + len(q.question) if not out[2] & 0x02 else 0
            end = start + len(entry.body) if start else 0
            self.memo.put(memo, (min(expires, now + left), out[2:], KIND_CACHED, decision,
                                 query, entry, age, start, end), now)
        return out

    def _answer(self, q: Question, key: Hashable, limit: int
                ) -> bytes | Awaitable[bytes | None]:
        hit = self.cache.get(key)
        if hit is not None:
            entry, age = hit
            return entry.render(q, age, limit)
        return self._forward(q, key, limit)

    def _prefetch(self, q: Question, key: Hashable) -> None:
        """Refresh a popular entry before it expires; the client is answered from the cache."""
        if key in self._inflight:
            return
        self.stats["prefetched"] += 1
        self.fetch(q, key, lambda entry, exc: None)

    # -- upstream ------------------------------------------------------------

    def fetch(self, q: Question, key: Hashable, done: Fetched) -> None:
        """Resolve `q` upstream into the cache, then `done(entry, None)` or `done(None, error)`.

        Identical misses share one upstream query. Callbacks all the way: a miss costs
        no task and no future (UDP's path); `_entry` wraps it for coroutines.
        """
        waiters = self._inflight.get(key)
        if waiters is not None:
            if key in self._late:   # already slower than stale_answer_after: no more waiting
                stale = self.cache.get_stale(key)
                if stale is not None:
                    done(stale, Stale("upstream slow"))
                    return
            waiters.append(done)
            return
        self._inflight[key] = [done]
        self.stats["forwarded"] += 1
        if self.cache.stale_for:
            self._arm_stale(key)
        try:
            self.upstreams.query(q, lambda data, lay, exc: self._fetched(key, data, lay, exc))
        except Exception as exc:   # never leave the key in flight: its name would hang for good
            _errors.exception("forwarding %s failed", q.name)
            if key in self._inflight:
                self._fetched(key, None, None, exc)

    def _arm_stale(self, key: Hashable) -> None:
        """If `key` has an expired entry to fall back on, answer from it should the
        upstream take longer than stale_answer_after."""
        old = self.cache.get_stale(key)
        if old is None or old.expires > self.cache.clock():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._stale_timers[key] = loop.call_later(self.stale_answer_after,
                                                  self._answer_stale, key)

    def _answer_stale(self, key: Hashable) -> None:
        self._stale_timers.pop(key, None)
        waiters = self._inflight.get(key)
        entry = self.cache.get_stale(key)
        if not waiters or entry is None:
            return
        self._late.add(key)
        answered = waiters[:]
        waiters.clear()   # the upstream's answer, when it comes, only fills the cache
        for done in answered:
            try:
                done(entry, Stale("upstream slow"))
            except Exception:
                _errors.exception("answering a forwarded query failed")

    def _fetched(self, key: Hashable, data: bytes | None, lay: wire.Layout | None,
                 exc: BaseException | None) -> None:
        waiters = self._inflight.pop(key, ())
        timer = self._stale_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._late.discard(key)
        entry = None
        if exc is None:
            try:
                if key[2] & ECH_STRIPPED:  # type: ignore[index]
                    stripped = svcb.strip_ech(data, lay)  # type: ignore[arg-type]
                    if stripped is not None:
                        data, lay = stripped
                        self.stats["ech_stripped"] += 1
                entry = Entry.from_response(data, lay)  # type: ignore[arg-type]
                self.cache.put(key, entry, lay)  # type: ignore[arg-type]
            except (BadQuery, ValueError) as bad:
                entry, exc = None, bad
        if entry is None and self.cache.stale_for:
            entry = self.cache.get_stale(key)
            if entry is not None:
                exc = Stale(str(exc))
        for done in waiters:
            try:
                done(entry, exc)
            except Exception:
                _errors.exception("answering a forwarded query failed")

    def ttl_cap(self, until: float | None) -> int | None:
        """Whole seconds left until `until` (a Decision's valid_until as Unix time), >= 0."""
        if until is None:
            return None
        return max(0, int(until - self.wall_clock()))

    def reply_for(self, q: Question, limit: int, entry: Entry | None,
                  exc: BaseException | None, cap: float | None = None) -> bytes:
        """The client's answer once `fetch` is done: the records, or SERVFAIL saying why."""
        if entry is None:
            self.stats["servfail"] += 1
            if isinstance(exc, UpstreamError):
                return self.answers.servfail(q)
            _unusable.warning("unusable upstream answer for %s: %s", q.name, exc)
            return self.answers.servfail(q, "upstream answer unusable")
        if isinstance(exc, Stale):
            return self._render_stale(q, entry, limit)
        age = int(self.cache.clock() - entry.stored_at) if entry.stored_at else 0
        if cap is not None:
            return entry.render(q, age, limit, body=entry.body_capped(age, self.ttl_cap(cap)))
        return entry.render(q, age, limit)

    def _render_stale(self, q: Question, entry: Entry, limit: int) -> bytes:
        self.stats["stale"] += 1
        options = (ede_option(EDE_STALE_ANSWER, "filterd: no upstream answered")
                   if q.edns is not None else b"")
        return entry.render(q, limit=limit, body=entry.body_with_ttl(STALE_TTL),
                            options=options)

    async def _entry(self, q: Question, key: Hashable) -> tuple[Entry, bool]:
        """The cached or freshly resolved Entry for `q`, and whether it is stale (raises
        what the upstream failed with when there is no stale entry either)."""
        hit = self.cache.get(key)
        if hit is not None:
            return hit[0], False
        fut: asyncio.Future[tuple[Entry, bool]] = asyncio.get_running_loop().create_future()

        def done(entry: Entry | None, exc: BaseException | None) -> None:
            if fut.done():   # the awaiting task was cancelled
                return
            if entry is None:
                fut.set_exception(exc or UpstreamError("no answer"))
            else:
                fut.set_result((entry, isinstance(exc, Stale)))

        self.fetch(q, key, done)
        return await fut

    def _forward(self, q: Question, key: Hashable, limit: int, cap: float | None = None
                 ) -> Pending:
        return Pending(self, q, key, limit, cap)

    async def _forward_async(self, q: Question, key: Hashable, limit: int,
                             cap: float | None = None) -> bytes | None:
        try:
            entry, stale = await self._entry(q, key)
            exc: BaseException | None = Stale("stale") if stale else None
        except (UpstreamError, BadQuery, ValueError) as failed:
            entry, exc = None, failed
        return self.reply_for(q, limit, entry, exc, cap)

    async def _rewrite_slow(self, q: Question, target: str, key: Hashable,
                            limit: int, cap: float | None = None) -> bytes | None:
        tq = Question(0, RD, target, q.qtype, q.qclass,
                      wire.encode_name(target) + q.question[-4:], q.edns)
        try:
            entry, stale = await self._entry(tq, (target, q.qtype, key[2]))  # type: ignore[index]
        except (UpstreamError, BadQuery, ValueError):
            self.stats["servfail"] += 1
            return self.answers.servfail(q)
        if stale:   # the chain is built for this answer only: a stale target is not cached
            tq_answer = entry.render(tq, body=entry.body_with_ttl(STALE_TTL))
            chain = codec.cname_chain(q, target, tq_answer, STALE_TTL)
            lay = wire.scan_response(chain)
            return self._render_stale(q, Entry.from_response(chain, lay), limit)
        chain = codec.cname_chain(q, target, entry.render(tq), self.rewrite_ttl)
        lay = wire.scan_response(chain)
        chained = Entry.from_response(chain, lay)
        self.cache.put(key, chained, lay)
        if cap is not None:
            return chained.render(q, 0, limit, body=chained.body_capped(0, self.ttl_cap(cap)))
        return chained.render(q, 0, limit)

    def status(self) -> dict[str, Any]:
        return {**self.stats, "cache_entries": len(self.cache), "cache_hits": self.cache.hits,
                "cache_misses": self.cache.misses, "upstreams": self.upstreams.status()}
