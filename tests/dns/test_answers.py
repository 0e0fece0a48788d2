from datetime import UTC, datetime

import pytest
from dnslib import EDNS0, QTYPE, DNSQuestion, DNSRecord

from filterd.dns import wire
from filterd.dns.answers import EDE_BLOCKED, EDE_FILTERED, BlockAnswers, ede_for
from filterd.policy.decision import Action, BlockMode, Decision, Reason, RuleSource


def decision(mode, reason=Reason.CATEGORY, category="adult"):
    return Decision(action=Action.BLOCK, reason=reason, name="x.test", group="thcs",
                    at=datetime.now(UTC), rule="x.test", source=RuleSource("list", "ut1"),
                    category=category, block_mode=mode)


def q(qtype="A", edns=True):
    rec = DNSRecord(q=DNSQuestion("x.test", getattr(QTYPE, qtype)))
    if edns:
        rec.add_ar(EDNS0(udp_len=1232))
    return wire.parse_query(rec.pack())


ANS = BlockAnswers(ttl=10, ipv4="10.1.2.3", ipv6="fd00::1")


@pytest.mark.parametrize("mode, qtype, rcode, rdata", [
    (BlockMode.ADDRESS, "A", 0, "10.1.2.3"),
    (BlockMode.ADDRESS, "AAAA", 0, "fd00::1"),
    (BlockMode.ADDRESS, "MX", 0, None),
    (BlockMode.NULL, "A", 0, "0.0.0.0"),
    (BlockMode.NULL, "AAAA", 0, "::"),
    (BlockMode.NXDOMAIN, "A", 3, None),
    (BlockMode.NODATA, "A", 0, None),
])
def test_block_modes(mode, qtype, rcode, rdata):
    rec = DNSRecord.parse(ANS.block(q(qtype), decision(mode)))
    assert rec.header.rcode == rcode and rec.header.qr
    if rdata:
        assert [str(r.rdata) for r in rec.rr] == [rdata]
        assert rec.rr[0].ttl == 10
    else:
        assert not rec.rr
        assert rec.auth[0].rtype == QTYPE.SOA and rec.auth[0].ttl == 10


def test_address_mode_without_ipv6_is_nodata():
    v4_only = BlockAnswers(10, "10.1.2.3")
    rec = DNSRecord.parse(v4_only.block(q("AAAA"), decision(BlockMode.ADDRESS)))
    assert rec.header.rcode == 0 and not rec.rr


def test_extended_dns_error_names_the_category():
    rec = DNSRecord.parse(ANS.block(q(), decision(BlockMode.NXDOMAIN)))
    opt = rec.ar[0]
    ede = next(o for o in opt.rdata if o.code == 15)
    assert int.from_bytes(ede.data[:2], "big") == EDE_FILTERED
    assert "Adult content" in ede.data[2:].decode()
    code, text = ede_for(decision(BlockMode.NXDOMAIN, Reason.PROTECTED, "illegal"))
    assert code == EDE_BLOCKED and "Illegal content" in text
    # no EDNS in the query: no OPT in the answer
    assert not DNSRecord.parse(ANS.block(q(edns=False), decision(BlockMode.NXDOMAIN))).ar


def test_any_is_rfc8482_hinfo():
    rec = DNSRecord.parse(ANS.any_answer(q("ANY")))
    assert rec.rr[0].rtype == QTYPE.HINFO and rec.rr[0].rdata.data == b"\x07RFC8482\x00"


def test_bad_ttl_refused():
    with pytest.raises(ValueError):
        BlockAnswers(ttl=-1)


def _ede_text(answer: bytes) -> tuple[int, str]:
    ede = next(o for o in DNSRecord.parse(answer).ar[0].rdata if o.code == 15)
    return int.from_bytes(ede.data[:2], "big"), ede.data[2:].decode()


def test_remembered_ede_options_are_the_words_of_each_decision():
    """The EDE option is remembered per (reason, category, group): every cell still gets
    its own words, the same as ede_for gives."""
    answers = BlockAnswers(ttl=10)
    cells = [decision(BlockMode.NXDOMAIN),
             decision(BlockMode.NXDOMAIN, Reason.PROTECTED, "illegal"),
             decision(BlockMode.NXDOMAIN, Reason.GROUP_DENY, None),
             decision(BlockMode.NXDOMAIN, Reason.CATEGORY, "gambling")]
    for _ in range(2):   # the second round comes from the memo
        for d in cells:
            assert _ede_text(answers.block(q(), d)) == ede_for(d)


def test_new_words_drop_the_remembered_ede_options():
    from filterd.words.explain import Words

    answers = BlockAnswers(ttl=10)
    d = decision(BlockMode.NXDOMAIN)
    assert "group thcs" in _ede_text(answers.block(q(), d))[1]

    class Renamed(Words):
        def ede(self, d):
            return "filterd: renamed"

    answers.words = Renamed()
    assert _ede_text(answers.block(q(), d))[1] == "filterd: renamed"
