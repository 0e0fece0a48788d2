import asyncio
import inspect
import time
from datetime import timedelta

from dnshelpers import FakeEngine, FakeUpstream, reply_a
from dnslib import EDNS0, QTYPE, DNSQuestion, DNSRecord

from filterd.dns.answers import BlockAnswers
from filterd.dns.ratelimit import RateLimiter
from filterd.dns.resolver import Resolver
from filterd.dns.upstream import UpstreamPool
from filterd.policy.decision import Action


def pkt(name, qtype="A", edns=False, qid=1):
    rec = DNSRecord(q=DNSQuestion(name, getattr(QTYPE, qtype)))
    rec.header.id = qid
    if edns:
        rec.add_ar(EDNS0(udp_len=1232))
    return rec.pack()


class Events:
    def __init__(self):
        self.seen = []

    def record(self, decision, query):
        self.seen.append((decision.action, query.name, query.client_ip))


async def answer(res):
    if inspect.isawaitable(res):
        res = await res
    return DNSRecord.parse(res) if res is not None else None


def with_resolver(test, handler=lambda d, tcp: reply_a(d), **kw):
    async def go():
        up = await FakeUpstream(handler).start()
        engine = FakeEngine(rewrites={"www.google.com": "forcesafesearch.google.com"})
        events = Events()
        r = Resolver(engine, UpstreamPool([up.address], timeout=0.3), events=events,
                     answers=BlockAnswers(10, "10.0.0.1"), **kw)
        try:
            await test(r, up, engine, events)
        finally:
            r.upstreams.close()
            up.close()
    asyncio.run(asyncio.wait_for(go(), 30))


def test_block_answer_is_immediate_and_logged():
    async def t(r, up, engine, events):
        res = r.handle(pkt("blocked.test"), "10.0.0.5")
        assert isinstance(res, bytes)
        assert DNSRecord.parse(res).header.rcode == 3
        assert events.seen == [(Action.BLOCK, "blocked.test", "10.0.0.5")]
        assert up.received == []
    with_resolver(t)


def test_allowed_is_forwarded_then_cached():
    async def t(r, up, engine, events):
        first = await answer(r.handle(pkt("a.test", qid=11), "10.0.0.5"))
        second = r.handle(pkt("A.TEST", qid=12), "10.0.0.6")
        assert isinstance(second, bytes)   # served from the cache, synchronously
        rec = DNSRecord.parse(second)
        assert rec.header.id == 12 and str(rec.rr[0].rdata) == str(first.rr[0].rdata)
        assert len(up.received) == 1
    with_resolver(t)


def test_identical_misses_share_one_upstream_query():
    async def t(r, up, engine, events):
        results = await asyncio.gather(*[answer(r.handle(pkt("same.test", qid=i), "10.0.0.5"))
                                         for i in range(20)])
        assert sorted(x.header.id for x in results) == list(range(20))
        assert len(up.received) == 1
    with_resolver(t)


def test_rewrite_is_a_full_cname_chain():
    async def t(r, up, engine, events):
        rec = await answer(r.handle(pkt("www.google.com"), "10.0.0.5"))
        assert [x.rtype for x in rec.rr] == [QTYPE.CNAME, QTYPE.A]
        assert str(rec.rr[0].rdata) == "forcesafesearch.google.com."
        asked = DNSRecord.parse(up.received[0])
        assert str(asked.q.qname) == "forcesafesearch.google.com."
        again = r.handle(pkt("www.google.com"), "10.0.0.5")
        assert isinstance(again, bytes)   # cached chain
        assert events.seen[0][0] is Action.REWRITE
    with_resolver(t)


def test_upstream_down_is_servfail_with_ede():
    async def t(r, up, engine, events):
        rec = await answer(r.handle(pkt("a.test", edns=True), "10.0.0.5"))
        assert rec.header.rcode == 2
        assert any(o.code == 15 for o in rec.ar[0].rdata)
    with_resolver(t, lambda d, tcp: None)


def test_refused_and_formerr_types_and_any():
    async def t(r, up, engine, events):
        assert (await answer(r.handle(pkt("a.test", "AXFR"), "10.0.0.5"))).header.rcode == 5
        assert (await answer(r.handle(pkt("a.test", "OPT"), "10.0.0.5"))).header.rcode == 1
        rec = await answer(r.handle(pkt("a.test", "ANY"), "10.0.0.5"))
        assert rec.rr[0].rtype == QTYPE.HINFO
        assert up.received == []
    with_resolver(t)


def test_rate_limit_drops_udp_refuses_tcp():
    async def t(r, up, engine, events):
        results = [r.handle(pkt("blocked.test"), "10.0.0.9") for _ in range(10)]
        assert results.count(None) == 8
        assert DNSRecord.parse(r.handle(pkt("blocked.test"), "10.0.0.9", True)).header.rcode == 5
        assert r.handle(pkt("blocked.test"), "10.0.0.10") is not None
    with_resolver(t, rate_limit=RateLimiter(1, burst=2))


def test_responses_are_never_answered():
    async def t(r, up, engine, events):
        assert r.handle(reply_a(pkt("a.test")), "10.0.0.5") is None
        assert r.stats["dropped"] == 1
    with_resolver(t)


def test_engine_swap_takes_effect_on_next_query():
    async def t(r, up, engine, events):
        r.engine = FakeEngine(blocked={"a.test"})
        assert DNSRecord.parse(r.handle(pkt("a.test"), "10.0.0.5")).header.rcode == 3
    with_resolver(t)



def test_decisions_reused_per_client_for_a_moment():
    async def t(r, up, engine, events):
        for ip in ("10.0.0.5", "10.0.0.5", "10.0.0.6"):
            r.handle(pkt("blocked.test"), ip)
        assert [q.client_ip for q in engine.queries] == ["10.0.0.5", "10.0.0.6"]
        assert len(events.seen) == 3   # every query is still logged
        r.engine = engine   # a reload forgets every decision
        r.handle(pkt("blocked.test"), "10.0.0.5")
        assert len(engine.queries) == 3
    with_resolver(t)


def test_verdicts_shared_by_the_devices_of_a_group():
    """An engine that fixes each client's group (Engine.client_group): the group's devices
    share its verdicts for the second; each answer is still logged with its own device."""

    class Grouped(FakeEngine):
        def __init__(self, stable=True):
            super().__init__()
            self.stable = stable
            self.asked = []

        def client_group(self, ip):
            self.asked.append(ip)
            return ("lop_6a" if ip.startswith("10.0.6.") else "lop_7a"), self.stable

    async def t(r, up, engine, events):
        r.engine = engine = Grouped()
        for ip in ("10.0.6.1", "10.0.6.2", "10.0.7.1", "10.0.6.1", "10.0.7.2"):
            r.handle(pkt("blocked.test", qid=len(events.seen) + 1), ip)
        assert [q.client_ip for q in engine.queries] == ["10.0.6.1", "10.0.7.1"]
        assert [e[2] for e in events.seen] == ["10.0.6.1", "10.0.6.2", "10.0.7.1",
                                               "10.0.6.1", "10.0.7.2"]
        assert engine.asked == ["10.0.6.1", "10.0.6.2", "10.0.7.1", "10.0.7.2"]  # once each
        query, decision = r.decide("10.0.6.9", "blocked.test", 1)
        assert query.client_ip == "10.0.6.9" and query.qtype == "A"
        assert decision.action is Action.BLOCK and len(engine.queries) == 2
        # A new engine (a reload) forgets the groups with the verdicts.
        r.engine = engine = Grouped(stable=False)   # groups from MAC addresses
        assert len(r.groups) == 0
        for ip in ("10.0.6.1", "10.0.6.2", "10.0.6.1"):
            r.handle(pkt("adult.test", qid=len(events.seen) + 1), ip)
        assert [q.client_ip for q in engine.queries] == ["10.0.6.1", "10.0.6.2"]
        assert engine.asked == ["10.0.6.1", "10.0.6.2"]
    with_resolver(t)


def test_verdicts_and_memo_answers_never_outlive_valid_until():
    """A verdict whose valid_until (a schedule turning, an override ending) is 0.25 s away
    is not reused after that moment, in either implementation of the verdict table."""
    import dataclasses

    class Turning(FakeEngine):
        def decide(self, q):
            d = super().decide(q)
            return dataclasses.replace(d, valid_until=q.at + timedelta(seconds=0.25))

    async def t(r, up, engine, events):
        r.engine = engine = Turning()
        _, _, expires = r._decide("10.0.0.5", "blocked.test", 1, 100.0)
        assert 100.2 < expires <= 100.2501   # valid_until is kept to the microsecond
        r._decide("10.0.0.5", "blocked.test", 1, expires - 0.01)
        assert len(engine.queries) == 1
        r._decide("10.0.0.5", "blocked.test", 1, expires)
        assert len(engine.queries) == 2
        data = pkt("blocked.test")
        r.handle(data, "10.0.0.6")
        # Such answers are not memoised at all (their TTL counts down to the moment).
        assert r.memo.get(("10.0.0.6", bytes(data[2:])), time.monotonic()) is None
        assert len(r.memo) == 0
    with_resolver(t)


def test_do_and_cd_answers_cached_apart():
    async def t(r, up, engine, events):
        plain = pkt("a.test", edns=True)
        do = DNSRecord(q=DNSQuestion("a.test", QTYPE.A))
        do.add_ar(EDNS0(udp_len=1232, flags="do"))
        cd = DNSRecord(q=DNSQuestion("a.test", QTYPE.A))
        cd.header.cd = 1
        for p in (plain, do.pack(), cd.pack(), plain, do.pack(), cd.pack()):
            await answer(r.handle(p, "10.0.0.5"))
        assert len(up.received) == 3
        sent_do = [DNSRecord.parse(x) for x in up.received]
        assert [bool(x.ar[0].ttl & 0x8000) for x in sent_do] == [False, True, False]
        assert [x.header.cd for x in sent_do] == [0, 0, 1]
    with_resolver(t)


ECH = "AAj+DQAEYWJjZA=="


def reply_https(data, tcp=False, ttl=300):
    import dns.message
    import dns.rrset

    q = dns.message.from_wire(data)
    r = dns.message.make_response(q)
    name = q.question[0].name
    if q.question[0].rdtype == 65:
        r.answer.append(dns.rrset.from_text(name, ttl, "IN", "HTTPS",
                                            f'1 . alpn="h2" ech={ECH} ipv4hint=192.0.2.30'))
    else:
        r.answer.append(dns.rrset.from_text(name, ttl, "IN", "A", "192.0.2.30"))
    return r.to_wire()


def https_text(rec):
    return [str(rr.rdata) for rr in rec.rr if rr.rtype == 65]


def test_ech_stripped_for_filtered_groups_fresh_and_cached():
    async def t(r, up, engine, events):
        first = await answer(r.handle(pkt("ech.test", "HTTPS"), "10.0.0.5"))
        cached = r.handle(pkt("ech.test", "HTTPS", qid=2), "10.0.0.6")
        assert isinstance(cached, bytes)
        for rec in (first, DNSRecord.parse(cached)):
            (text,) = https_text(rec)
            assert "ech" not in text and "alpn" in text and "192.0.2.30" in text
        assert r.stats["ech_stripped"] == 1 and len(up.received) == 1
        # Other types are never touched.
        a = await answer(r.handle(pkt("ech.test", "A"), "10.0.0.5"))
        assert str(a.rr[0].rdata) == "192.0.2.30"
    with_resolver(t, reply_https)


def test_ech_kept_for_groups_not_filtered_by_name():
    async def t(r, up, engine, events):
        rec = await answer(r.handle(pkt("ech.test", "HTTPS"), "10.0.0.5"))
        assert "ech" in https_text(rec)[0]
        assert r.stats["ech_stripped"] == 0
    with_resolver(t, reply_https, keep_ech_groups={"thcs"})   # FakeEngine's group


def test_kept_and_stripped_answers_are_cached_apart():
    async def t(r, up, engine, events):
        r.keep_ech_groups = frozenset({"thcs"})
        kept = await answer(r.handle(pkt("ech.test", "HTTPS"), "10.0.0.5"))
        r.keep_ech_groups = frozenset()
        stripped = await answer(r.handle(pkt("ech.test", "HTTPS", qid=3), "10.0.0.5"))
        assert "ech" in https_text(kept)[0] and "ech" not in https_text(stripped)[0]
        assert len(up.received) == 2
    with_resolver(t, reply_https)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_serve_stale_when_upstream_fails_then_fresh_again():
    from filterd.dns.cache import AnswerCache

    clock = Clock()
    state = {"up": True}

    def handler(data, tcp):
        return reply_a(data, ttl=60) if state["up"] else None

    async def t(r, up, engine, events):
        first = await answer(r.handle(pkt("a.test", edns=True), "10.0.0.5"))
        assert first.rr[0].ttl == 60
        state["up"] = False
        clock.t += 61
        stale = await answer(r.handle(pkt("a.test", edns=True), "10.0.0.5"))
        assert stale.header.rcode == 0 and str(stale.rr[0].rdata) == "192.0.2.1"
        assert stale.rr[0].ttl == 30
        assert [o.code for o in stale.ar[0].rdata] == [15]   # EDE option...
        assert stale.ar[0].rdata[0].data[:2] == b"\x00\x03"   # ...3, Stale Answer
        assert r.stats["stale"] == 1
        clock.t += 130   # past stale_for: SERVFAIL, never older data
        late = await answer(r.handle(pkt("a.test"), "10.0.0.5"))
        assert late.header.rcode == 2
        state["up"] = True
        fresh = await answer(r.handle(pkt("a.test"), "10.0.0.5"))
        assert fresh.rr[0].ttl == 60
    with_resolver(t, handler, cache=AnswerCache(clock=clock, stale_for=120))


def test_no_stale_answers_when_off():
    from filterd.dns.cache import AnswerCache

    clock = Clock()
    state = {"up": True}

    async def t(r, up, engine, events):
        await answer(r.handle(pkt("a.test"), "10.0.0.5"))
        state["up"] = False
        clock.t += 301
        assert (await answer(r.handle(pkt("a.test"), "10.0.0.5"))).header.rcode == 2
    with_resolver(t, lambda d, tcp: reply_a(d) if state["up"] else None,
                  cache=AnswerCache(clock=clock))


def test_prefetch_refreshes_a_name_asked_near_its_expiry():
    from filterd.dns.cache import AnswerCache

    clock = Clock()

    async def t(r, up, engine, events):
        await answer(r.handle(pkt("a.test"), "10.0.0.5"))
        clock.t += 50    # not yet in the last tenth of 300 s
        assert isinstance(r.handle(pkt("a.test"), "10.0.0.5"), bytes)
        assert len(up.received) == 1
        clock.t += 225   # 275 s old
        hit = r.handle(pkt("a.test"), "10.0.0.5")
        assert isinstance(hit, bytes)   # the client is answered from the cache at once
        assert DNSRecord.parse(hit).rr[0].ttl == 25
        r.handle(pkt("a.test"), "10.0.0.5")   # one refresh in flight, not two
        for _ in range(50):
            await asyncio.sleep(0.01)
            if r.stats["forwarded"] == 2 and not r._inflight:
                break
        assert len(up.received) == 2 and r.stats["prefetched"] == 1
        assert DNSRecord.parse(r.handle(pkt("a.test"), "10.0.0.5")).rr[0].ttl == 300
    with_resolver(t, cache=AnswerCache(clock=clock, prefetch_min_ttl=10))


def test_ech_stripped_in_a_safe_search_rewrite_chain_too():
    async def t(r, up, engine, events):
        rec = await answer(r.handle(pkt("www.google.com", "HTTPS"), "10.0.0.5"))
        assert [x.rtype for x in rec.rr] == [QTYPE.CNAME, 65]
        (text,) = https_text(rec)
        assert "ech" not in text and "alpn" in text
        cached = DNSRecord.parse(r.handle(pkt("www.google.com", "HTTPS", qid=9), "10.0.0.5"))
        assert "ech" not in https_text(cached)[0]
    with_resolver(t, reply_https)


def test_stale_answer_when_the_upstream_is_slow_not_only_when_it_fails():
    import time

    from filterd.dns.cache import AnswerCache

    clock = Clock()
    state = {"up": True}

    async def t(r, up, engine, events):
        r.stale_answer_after = 0.1   # the pool's timeout here is 0.3 s
        await answer(r.handle(pkt("a.test"), "10.0.0.5"))
        state["up"] = False          # silent: the query hangs until the timeout
        clock.t += 301
        started = time.monotonic()
        first, second = await asyncio.gather(answer(r.handle(pkt("a.test", qid=2), "10.0.0.5")),
                                             answer(r.handle(pkt("a.test", qid=3), "10.0.0.6")))
        assert time.monotonic() - started < 0.25
        assert first.rr[0].ttl == second.rr[0].ttl == 30 and r.stats["stale"] == 2
        late = await answer(r.handle(pkt("a.test", qid=4), "10.0.0.7"))   # joins, no wait
        assert late.rr[0].ttl == 30 and time.monotonic() - started < 0.3
        assert len(up.received) == 2   # one upstream query for all three
        await asyncio.sleep(0.4)       # the upstream query timed out meanwhile
        assert not r._inflight and not r._late and not r._stale_timers
        state["up"] = True
        assert (await answer(r.handle(pkt("a.test", qid=5), "10.0.0.5"))).rr[0].ttl == 300
    with_resolver(t, lambda d, tcp: reply_a(d) if state["up"] else None,
                  cache=AnswerCache(clock=clock, stale_for=600))
