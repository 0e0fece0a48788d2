"""ECH removal from SVCB/HTTPS records: RDATA, whole messages, against dnspython's parser."""

import dns.flags
import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from filterd.dns import svcb, wire

ECH = "AAj+DQAEYWJjZA=="


def rdata(text, rdtype="HTTPS"):
    return dns.rdata.from_text(dns.rdataclass.IN, getattr(dns.rdatatype, rdtype), text
                               ).to_wire()


def text(wire_bytes, rdtype="HTTPS"):
    return dns.rdata.from_wire(dns.rdataclass.IN, getattr(dns.rdatatype, rdtype), wire_bytes,
                               0, len(wire_bytes)).to_text()


def test_ech_removed_everything_else_kept():
    raw = rdata(f'1 . alpn="h2,h3" ipv4hint=192.0.2.30 ech={ECH} ipv6hint=2001:db8::30')
    out = svcb.strip_ech_rdata(raw)
    assert text(out) == '1 . alpn="h2,h3" ipv4hint="192.0.2.30" ipv6hint="2001:db8::30"'
    assert len(out) == len(raw) - 4 - 10   # key, length, 10 bytes of ECHConfigList


def test_mandatory_loses_ech_or_goes_when_empty():
    out = svcb.strip_ech_rdata(rdata(f"1 alt.test. mandatory=alpn,ech alpn=h2 ech={ECH}"))
    assert text(out) == '1 alt.test. mandatory="alpn" alpn="h2"'
    out = svcb.strip_ech_rdata(rdata(f"1 alt.test. mandatory=ech ech={ECH} port=8443"))
    assert text(out) == '1 alt.test. port="8443"'


def test_without_ech_untouched_and_alias_form():
    assert svcb.strip_ech_rdata(rdata('1 . alpn="h2"')) is None
    assert svcb.strip_ech_rdata(rdata("0 target.test.")) is None


@pytest.mark.parametrize("bad", [
    b"\x00",                                   # no target
    b"\x00\x01\x05ab",                         # target runs past
    b"\x00\x01\xc0\x0c",                       # compressed target
    b"\x00\x01\x00\x00\x05\x00",               # param header truncated
    b"\x00\x01\x00\x00\x05\x00\x04ab",         # value truncated
    b"\x00\x01\x00\x00\x05\x00\x00\x00\x03\x00\x00",   # keys out of order
    b"\x00\x01\x00\x00\x00\x00\x03\x00\x05\x00\x05\x00\x00",  # odd mandatory, ech present
])
def test_malformed_rdata_refused(bad):
    with pytest.raises(svcb.SvcbError):
        svcb.strip_ech_rdata(bad)


def message(*rrsets, additional=()):
    q = dns.message.make_query("ech.test", "HTTPS", use_edns=0)
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AD
    for rr in rrsets:
        r.answer.append(dns.rrset.from_text(*rr))
    for rr in additional:
        r.additional.append(dns.rrset.from_text(*rr))
    return r.to_wire()


def test_whole_message_stripped_and_names_still_resolve():
    data = message(("ech.test.", 300, "IN", "CNAME", "svc.ech.test."),
                   ("svc.ech.test.", 300, "IN", "HTTPS",
                    f"1 . alpn=h2 ech={ECH} port=443", f"2 b.ech.test. ech={ECH}"),
                   additional=[("b.ech.test.", 300, "IN", "A", "192.0.2.5"),
                               ("svc.ech.test.", 300, "IN", "SVCB", f"1 . ech={ECH} alpn=dot")])
    lay = wire.scan_response(data)
    out, lay2 = svcb.strip_ech(data, lay)
    m = dns.message.from_wire(out)
    assert "ech=" not in m.to_text()
    assert m.answer[0].to_text() == "ech.test. 300 IN CNAME svc.ech.test."
    assert sorted(r.to_text() for r in m.answer[1]) == ['1 . alpn="h2" port="443"',
                                                        "2 b.ech.test."]
    assert m.additional[0].to_text() == "b.ech.test. 300 IN A 192.0.2.5"
    assert m.additional[1].to_text() == 'svc.ech.test. 300 IN SVCB 1 . alpn="dot"'
    assert not m.flags & dns.flags.AD   # altered: no longer vouched for
    assert lay2.counts == lay.counts and len(lay2.ttl_offsets) == len(lay.ttl_offsets)


def test_message_without_ech_is_left_alone():
    data = message(("ech.test.", 300, "IN", "HTTPS", '1 . alpn="h2"'))
    assert svcb.strip_ech(data, wire.scan_response(data)) is None
