import struct

import pytest
from dnslib import EDNS0, QTYPE, DNSQuestion, DNSRecord, EDNSOption

from filterd.dns import edns, wire


def parsed(options=(), udp=4096, do=False):
    rec = DNSRecord(q=DNSQuestion("a.test", QTYPE.A))
    rec.add_ar(EDNS0(udp_len=udp, flags="do" if do else "",
                     opts=[EDNSOption(c, d) for c, d in options]))
    return wire.parse_query(rec.pack()).edns


def test_client_subnet_is_seen():
    ecs = struct.pack("!HBB", 1, 24, 0) + bytes([10, 1, 2])
    e = parsed([(edns.OPTION_ECS, ecs)], do=True)
    assert e.has_client_subnet and e.do


@pytest.mark.parametrize("udp, expected", [(0, 512), (100, 512), (1232, 1232), (65535, 65535)])
def test_payload_size_floor(udp, expected):
    assert parsed(udp=udp).max_payload == expected


def test_ede_option_roundtrip():
    opt = edns.build_opt(do=True, options=edns.ede_option(17, "category adult"))
    e = edns.parse_opt(opt, 0, 1)
    assert e.do and e.options == ((15, b"\x00\x11category adult"),)


def test_truncated_option_header_is_an_error():
    bad = b"\x00" + struct.pack("!HHBBHH", 41, 512, 0, 0, 0, 2) + b"\x00\x08"
    with pytest.raises(edns.EdnsFormatError):
        edns.parse_opt(bad, 0, 1)
