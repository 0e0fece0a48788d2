import struct

import pytest
from dnslib import (
    AAAA,
    CNAME,
    EDNS0,
    MX,
    QTYPE,
    RR,
    SOA,
    TXT,
    A,
    DNSQuestion,
    DNSRecord,
    EDNSOption,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.dns import wire
from filterd.dns.edns import build_opt
from filterd.dns.wire import BadQuery, Drop, Rcode

label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                min_size=1, max_size=20)
names = st.lists(label, min_size=1, max_size=6).map(".".join)
qtypes = st.sampled_from([1, 2, 5, 6, 12, 15, 16, 28, 33, 64, 65, 255, 1234])


def make_query(name, qtype, qid=0x1234, rd=True, edns=None, options=()):
    rec = DNSRecord(q=DNSQuestion(name, qtype))
    rec.header.id = qid
    rec.header.rd = int(rd)
    if edns is not None:
        udp, do = edns
        rec.add_ar(EDNS0(udp_len=udp, flags="do" if do else "",
                         opts=[EDNSOption(c, d) for c, d in options]))
    return rec.pack()


@settings(max_examples=300, deadline=None)
@given(name=names, qtype=qtypes, qid=st.integers(0, 65535), rd=st.booleans(),
       edns=st.none() | st.tuples(st.integers(0, 65535), st.booleans()),
       # min_size=1: dnslib skips a trailing option with no data (`remaining() > 4`), we do not.
       options=st.lists(st.tuples(st.integers(0, 65535), st.binary(min_size=1, max_size=20)),
                        max_size=3))
def test_parse_query_agrees_with_dnslib(name, qtype, qid, rd, edns, options):
    data = make_query(name, qtype, qid, rd, edns, options if edns else ())
    q = wire.parse_query(data)
    ref = DNSRecord.parse(data)
    assert q.id == ref.header.id
    assert q.name == str(ref.q.qname).rstrip(".").lower()
    assert q.qtype == ref.q.qtype
    assert q.qclass == ref.q.qclass
    assert bool(q.flags & wire.RD) == bool(ref.header.rd)
    assert q.question == data[12:12 + len(q.question)]
    if edns is None:
        assert q.edns is None
    else:
        opt = next(r for r in ref.ar if r.rtype == QTYPE.OPT)
        assert q.edns.udp_size == opt.rclass
        assert q.edns.do == bool(opt.ttl & 0x8000)
        assert [c for c, _ in q.edns.options] == [o.code for o in opt.rdata]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_parse_query_never_raises_anything_but_wire_errors(data):
    try:
        q = wire.parse_query(data)
    except (Drop, BadQuery):
        return
    # Whatever we accept, dnslib can read too.
    assert DNSRecord.parse(data).q.qtype == q.qtype


def test_drops_short_packets_and_responses():
    with pytest.raises(Drop):
        wire.parse_query(b"\x00" * 11)
    resp = bytearray(make_query("a.test", 1))
    resp[2] |= 0x80
    with pytest.raises(Drop):
        wire.parse_query(bytes(resp))


@pytest.mark.parametrize("mutate, rcode", [
    (lambda b: b.__setitem__(2, b[2] | (5 << 3)), Rcode.NOTIMP),      # opcode UPDATE
    (lambda b: b.__setitem__(5, 2), Rcode.FORMERR),                   # QDCOUNT 2
    (lambda b: b.__setitem__(5, 0), Rcode.FORMERR),                   # QDCOUNT 0
    (lambda b: b.__setitem__(7, 1), Rcode.FORMERR),                   # ANCOUNT 1
])
def test_header_errors(mutate, rcode):
    b = bytearray(make_query("a.test", 1))
    mutate(b)
    with pytest.raises(BadQuery) as exc:
        wire.parse_query(bytes(b))
    assert exc.value.rcode == rcode


def test_compression_loop_and_pointer_in_question_are_formerr():
    hdr = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    with pytest.raises(BadQuery) as exc:
        wire.parse_query(hdr + b"\xc0\x0c" + b"\x00\x01\x00\x01")
    assert exc.value.rcode == Rcode.FORMERR
    loop = hdr + b"\x01a\xc0\x0c\x00\x01\x00\x01"
    with pytest.raises(BadQuery):
        wire.read_name(loop, 12)


def test_edns_version_1_is_badvers_and_bad_opt_is_formerr():
    q = make_query("a.test", 1)
    hdr = bytearray(q)
    hdr[11] = 1
    v1 = bytes(hdr) + b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 1, 0, 0)
    with pytest.raises(BadQuery) as exc:
        wire.parse_query(v1)
    assert exc.value.rcode == Rcode.BADVERS and exc.value.question is not None
    ans = wire.error_answer(exc.value.question, exc.value.rcode)
    rec = DNSRecord.parse(ans)
    opt = next(r for r in rec.ar if r.rtype == QTYPE.OPT)
    assert (opt.ttl >> 24) == 1 and rec.header.rcode == 0   # 16 = 1 << 4 | 0
    # option length runs past RDATA
    bad = bytes(hdr) + b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 4) + b"\x00\x08\x00\x09"
    with pytest.raises(BadQuery) as exc:
        wire.parse_query(bad)
    assert exc.value.rcode == Rcode.FORMERR
    # OPT owner not the root
    bad = bytes(hdr) + b"\x01x\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 0)
    with pytest.raises(BadQuery):
        wire.parse_query(bad)


def answer(name, records, rcode=0, auth=(), opt=False):
    rec = DNSRecord(q=DNSQuestion(name, QTYPE.A))
    rec.header.qr = 1
    rec.header.rcode = rcode
    for r in records:
        rec.add_answer(r)
    for r in auth:
        rec.add_auth(r)
    if opt:
        rec.add_ar(EDNS0(udp_len=4096))
    return rec.pack()


rdatas = st.sampled_from([
    (QTYPE.A, lambda: A("192.0.2.1")), (QTYPE.AAAA, lambda: AAAA("2001:db8::1")),
    (QTYPE.CNAME, lambda: CNAME("target.example.")), (QTYPE.MX, lambda: MX("mx.example.", 10)),
    (QTYPE.TXT, lambda: TXT("hello"))])


@settings(max_examples=200, deadline=None)
@given(name=names, recs=st.lists(st.tuples(rdatas, st.integers(0, 2**31 - 1)), max_size=5),
       opt=st.booleans(), age=st.integers(0, 1000))
def test_scan_response_finds_every_ttl(name, recs, opt, age):
    rrs = [RR(name, t, ttl=ttl, rdata=mk()) for (t, mk), ttl in recs]
    data = answer(name, rrs, opt=opt)
    lay = wire.scan_response(data)
    assert lay.counts == (len(rrs), 0, 0)
    assert (lay.opt_start >= 0) == opt
    assert lay.min_ttl == (min(ttl for _, ttl in recs) if recs else None)
    buf = bytearray(data)
    for off in lay.ttl_offsets:
        ttl = struct.unpack_from("!I", buf, off)[0]
        struct.pack_into("!I", buf, off, max(0, ttl - age))
    assert [r.ttl for r in DNSRecord.parse(bytes(buf)).rr] == [max(0, t - age) for _, t in recs]


def test_scan_response_negative_ttl_from_soa():
    soa = RR("test", QTYPE.SOA, ttl=3600,
             rdata=SOA("ns.test.", "host.test.", (1, 2, 3, 4, 60)))
    lay = wire.scan_response(answer("x.test", [], rcode=3, auth=[soa]))
    assert lay.negative_ttl == 60 and lay.rcode == 3


def test_error_answer_and_truncated_answer_parse():
    q = wire.parse_query(make_query("Mixed.Case.test", 1, edns=(4096, True)))
    rec = DNSRecord.parse(wire.error_answer(q, Rcode.REFUSED))
    assert rec.header.rcode == Rcode.REFUSED and rec.header.qr == 1
    assert str(rec.q.qname) == "Mixed.Case.test."    # 0x20 case preserved
    rec = DNSRecord.parse(wire.truncated_answer(q))
    assert rec.header.tc == 1 and not rec.rr
    assert wire.bare_error(make_query("a.test", 1), Rcode.FORMERR)[3] & 0xF == Rcode.FORMERR


def test_build_opt_parses_in_dnslib():
    q = wire.parse_query(make_query("a.test", 1))
    msg = wire.header(q, 0, ar=1) + q.question + build_opt(do=True)
    opt = DNSRecord.parse(msg).ar[0]
    assert opt.rtype == QTYPE.OPT and opt.rclass == 1232 and opt.ttl & 0x8000


def test_encode_name():
    assert wire.encode_name("a.bc.") == b"\x01a\x02bc\x00"
    assert wire.encode_name("") == b"\x00"
    with pytest.raises(ValueError):
        wire.encode_name("x" * 64 + ".test")
