import struct
from datetime import UTC, datetime

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
from filterd.dns.answers import BlockAnswers, ede_for
from filterd.dns.cache import Entry
from filterd.dns.edns import OPTION_EDE, build_opt
from filterd.dns.wire import BadQuery, Drop, Rcode
from filterd.policy.decision import Action, BlockMode, Decision, Reason, RuleSource

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


# ---------------------------------------------------------------------------
# Answers built from bytes (blocks, cache hits) read back by dnslib

BLOCKS = BlockAnswers(ttl=10, ipv4="10.1.2.3", ipv6="fd00::1")


def _cased(name: str) -> st.SearchStrategy[str]:
    """`name` with a random mix of upper and lower case (DNS 0x20)."""
    flips = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return flips.map(lambda up: "".join(c.upper() if u else c
                                        for c, u in zip(name, up, strict=True)))


mixed_case = names.flatmap(_cased)
client_edns = st.none() | st.tuples(st.integers(0, 65535), st.booleans())


def _client_query(name, qtype, qid, rd, edns, cd=False):
    data = bytearray(make_query(name, qtype, qid, rd, edns))
    if cd:
        data[3] |= 0x10
    return bytes(data)


def _records(section):
    return [(str(r.rname).lower(), r.rtype, r.ttl, str(r.rdata)) for r in section]


def _ede(rec):
    for r in rec.ar:
        if r.rtype == QTYPE.OPT:
            for o in r.rdata:
                if o.code == OPTION_EDE:
                    return struct.unpack("!H", o.data[:2])[0], o.data[2:].decode()
    return None


@settings(max_examples=300, deadline=None)
@given(name=mixed_case, qtype=st.sampled_from([1, 28, 15, 16, 65]), qid=st.integers(0, 65535),
       rd=st.booleans(), cd=st.booleans(), edns=client_edns, mode=st.sampled_from(list(BlockMode)),
       reason=st.sampled_from([Reason.CATEGORY, Reason.GROUP_DENY, Reason.BYPASS,
                               Reason.SCHEDULED_CATEGORY, Reason.PROTECTED]),
       category=st.sampled_from([None, "adult", "gambling", "phần mềm"]))
def test_block_answers_agree_with_dnslib(name, qtype, qid, rd, cd, edns, mode, reason, category):
    data = _client_query(name, qtype, qid, rd, edns, cd)
    q = wire.parse_query(data)
    decision = Decision(action=Action.BLOCK, reason=reason, name=q.name, group="thcs",
                        at=datetime.now(UTC), rule=q.name, source=RuleSource("list", "ut1"),
                        category=category, block_mode=mode)
    out = DNSRecord.parse(BLOCKS.block(q, decision))
    asked = DNSRecord.parse(data)
    h = out.header
    assert (h.id, h.qr, h.rd, h.ra, h.aa, h.tc) == (qid, 1, int(rd), 1, 0, 0)
    assert h.cd == int(cd)
    assert out.q == asked.q and str(out.q.qname) == str(asked.q.qname)   # 0x20 case kept
    qn = name.lower() + "."
    expected = {
        (BlockMode.ADDRESS, 1): (qn, 1, 10, "10.1.2.3"), (BlockMode.ADDRESS, 28): (qn, 28, 10,
                                                                                   "fd00::1"),
        (BlockMode.NULL, 1): (qn, 1, 10, "0.0.0.0"), (BlockMode.NULL, 28): (qn, 28, 10, "::"),
    }.get((mode, qtype))
    assert _records(out.rr) == ([expected] if expected else [])
    assert h.rcode == (3 if mode is BlockMode.NXDOMAIN else 0)
    if expected is None:   # negative: an SOA for the block TTL (RFC 2308)
        assert [(r.rtype, r.ttl, r.rdata.times[-1]) for r in out.auth] == [(QTYPE.SOA, 10, 10)]
    else:
        assert not out.auth
    if edns is None:
        assert not out.ar
    else:
        (opt,) = out.ar
        assert opt.rtype == QTYPE.OPT and bool(opt.ttl & 0x8000) == edns[1]
        assert _ede(out) == ede_for(decision)
        if category:   # the category's words, not its id
            assert ede_for(decision)[1].startswith("filterd: ")
            assert category == "phần mềm" or f" {category};" not in _ede(out)[1]


@settings(max_examples=300, deadline=None)
@given(name=mixed_case, recs=st.lists(st.tuples(rdatas, st.integers(0, 2**31 - 1)), max_size=5),
       rcode=st.sampled_from([0, 3]), upstream_opt=st.booleans(), ad=st.booleans(),
       qid=st.integers(0, 65535), rd=st.booleans(), edns=client_edns,
       age=st.integers(0, 100_000), limit=st.sampled_from([512, 1232, 65535]))
def test_cached_answers_render_like_dnslib(name, recs, rcode, upstream_opt, ad, qid, rd, edns,
                                           age, limit):
    upstream = DNSRecord.parse(answer(name.lower(), [RR(name.lower(), t, ttl=ttl, rdata=mk())
                                                     for (t, mk), ttl in recs],
                                      rcode=rcode, opt=upstream_opt))
    upstream.header.ad = int(ad)
    up = upstream.pack()
    entry = Entry.from_response(up, wire.scan_response(up))
    data = _client_query(name, 1, qid, rd, edns)
    q = wire.parse_query(data)
    raw = entry.render(q, age, limit)
    out = DNSRecord.parse(raw)
    h = out.header
    assert (h.id, h.qr, h.rd, h.ra) == (qid, 1, int(rd), 1)
    assert out.q == DNSRecord.parse(data).q and raw[12:12 + len(q.question)] == q.question
    assert len(raw) <= max(limit, 12 + len(q.question) + 11)
    assert h.ad == int(ad and edns is not None and edns[1])   # RFC 6840 5.8
    if h.tc:   # too big for the client: question only, retry over TCP
        assert not out.rr and len(entry.render(q, age, 65535)) > limit
    else:
        assert h.rcode == rcode
        assert _records(out.rr) == [(r[0], r[1], max(0, r[2] - age), r[3])
                                    for r in _records(upstream.rr)]
    opts = [r for r in out.ar if r.rtype == QTYPE.OPT]
    assert len(opts) == (0 if edns is None else 1)   # ours, never the upstream's
    if opts:
        assert opts[0].rclass == 1232 and not opts[0].rdata
