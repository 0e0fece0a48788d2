from dnslib import EDNS0, QTYPE, RR, SOA, A, DNSQuestion, DNSRecord

from filterd.dns import wire
from filterd.dns.cache import AnswerCache, Entry


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def response(name="a.test", ttls=(300,), rcode=0, soa=None, opt=True, tc=False):
    rec = DNSRecord(q=DNSQuestion(name, QTYPE.A))
    rec.header.qr = 1
    rec.header.rcode = rcode
    rec.header.tc = int(tc)
    for i, ttl in enumerate(ttls):
        rec.add_answer(RR(name, QTYPE.A, ttl=ttl, rdata=A(f"192.0.2.{i + 1}")))
    if soa is not None:
        soa_ttl, minimum = soa
        rec.add_auth(RR("test", QTYPE.SOA, ttl=soa_ttl,
                        rdata=SOA("ns.test.", "h.test.", (1, 2, 3, 4, minimum))))
    if opt:
        rec.add_ar(EDNS0(udp_len=4096))
    return rec.pack()


def query(name="a.test", qid=7, edns=False):
    rec = DNSRecord(q=DNSQuestion(name, QTYPE.A))
    rec.header.id = qid
    if edns:
        rec.add_ar(EDNS0(udp_len=1232))
    return wire.parse_query(rec.pack())


def put(cache, data, key="k"):
    lay = wire.scan_response(data)
    return cache.put(key, Entry.from_response(data, lay), lay)


def test_hit_renders_id_question_and_aged_ttls():
    clock = Clock()
    cache = AnswerCache(clock=clock)
    assert put(cache, response(ttls=(300, 100))) == 100
    clock.t += 30.5
    entry, age = cache.get("k")
    assert age == 30
    q = query("A.Test", qid=4242)
    rec = DNSRecord.parse(entry.render(q, age))
    assert rec.header.id == 4242 and str(rec.q.qname) == "A.Test."
    assert [r.ttl for r in rec.rr] == [70, 70]   # never more than the time we keep it
    assert not rec.ar   # upstream's OPT removed; the client sent none
    clock.t += 70
    assert cache.get("k") is None


def test_client_edns_gets_our_opt():
    cache = AnswerCache(clock=Clock())
    put(cache, response())
    entry, age = cache.get("k")
    rec = DNSRecord.parse(entry.render(query(edns=True), age))
    assert rec.ar[0].rtype == QTYPE.OPT and rec.ar[0].rclass == 1232


def test_floor_and_cap():
    cache = AnswerCache(min_ttl=60, max_ttl=600, clock=Clock())
    assert put(cache, response(ttls=(5,))) == 60
    assert put(cache, response(ttls=(86400,)), "k2") == 600


def test_negative_caching_rfc2308():
    cache = AnswerCache(negative_ttl_max=900, clock=Clock())
    assert put(cache, response(ttls=(), rcode=3, soa=(3600, 120))) == 120   # min(TTL, MINIMUM)
    assert put(cache, response(ttls=(), rcode=3, soa=(3600, 7200)), "k2") == 900  # capped
    assert put(cache, response(ttls=(), rcode=0, soa=(30, 300)), "k3") == 30  # NODATA
    assert put(cache, response(ttls=(), rcode=3), "k4") == 0   # no SOA: not cached
    assert cache.get("k4") is None


def test_servfail_and_truncated_not_cached():
    cache = AnswerCache(clock=Clock())
    assert put(cache, response(ttls=(), rcode=2)) == 0
    assert put(cache, response(tc=True), "k2") == 0
    assert len(cache) == 0


def test_too_big_for_udp_renders_truncated():
    cache = AnswerCache(clock=Clock())
    put(cache, response(ttls=tuple([300] * 60)))
    entry, age = cache.get("k")
    small = DNSRecord.parse(entry.render(query(), age, limit=512))
    assert small.header.tc == 1 and not small.rr
    assert len(DNSRecord.parse(entry.render(query(), age)).rr) == 60


def test_eviction_keeps_size_bounded():
    cache = AnswerCache(max_entries=10, clock=Clock())
    data = response()
    for i in range(100):
        put(cache, data, i)
    assert len(cache) <= 10
    assert cache.get(99) is not None


def test_opt_in_the_middle_is_repacked():
    rec = DNSRecord(q=DNSQuestion("a.test", QTYPE.A))
    rec.header.qr = 1
    rec.add_answer(RR("a.test", QTYPE.A, ttl=50, rdata=A("192.0.2.1")))
    rec.add_ar(EDNS0(udp_len=4096))
    rec.add_ar(RR("ns.a.test", QTYPE.A, ttl=50, rdata=A("192.0.2.2")))
    rec.add_ar(RR("ns.a.test", QTYPE.AAAA, ttl=50, rdata=__import__("dnslib").AAAA("::1")))
    data = rec.pack()
    entry = Entry.from_response(data, wire.scan_response(data))
    out = DNSRecord.parse(entry.render(query()))
    assert [str(r.rname) for r in out.ar] == ["ns.a.test.", "ns.a.test."]


def test_busy_names_survive_a_stream_of_one_off_names():
    cache = AnswerCache(max_entries=100, clock=Clock())
    data = response()
    put(cache, data, "hot")
    for i in range(1000):
        put(cache, data, f"miss{i}")
        cache.get("hot")
    assert cache.get("hot") is not None
    assert len(cache) <= 100
