import asyncio
import inspect

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
