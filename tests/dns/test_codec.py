from dnslib import EDNS0, QTYPE, RR, A, DNSQuestion, DNSRecord

from filterd.dns import codec, wire


def test_type_names():
    assert codec.type_name(1) == "A"
    assert codec.type_name(65) == "HTTPS"
    assert codec.type_name(65000) == "TYPE65000"


def test_cname_chain():
    q = wire.parse_query(DNSRecord(q=DNSQuestion("www.Google.com", QTYPE.A)).pack())
    up = DNSRecord(q=DNSQuestion("forcesafesearch.google.com", QTYPE.A))
    up.header.qr = 1
    up.add_answer(RR("forcesafesearch.google.com", QTYPE.A, ttl=300, rdata=A("216.239.38.120")))
    out = DNSRecord.parse(codec.cname_chain(q, "forcesafesearch.google.com", up.pack(), 10))
    assert out.header.id == q.id and str(out.q.qname) == "www.Google.com."
    assert [r.rtype for r in out.rr] == [QTYPE.CNAME, QTYPE.A]
    assert str(out.rr[0].rdata) == "forcesafesearch.google.com."
    assert out.rr[0].ttl == 10


def test_repack_without_opt():
    rec = DNSRecord(q=DNSQuestion("a.test", QTYPE.A))
    rec.add_ar(EDNS0())
    rec.add_ar(RR("b.test", QTYPE.A, rdata=A("192.0.2.1")))
    out = DNSRecord.parse(codec.repack_without_opt(rec.pack()))
    assert [r.rtype for r in out.ar] == [QTYPE.A]
