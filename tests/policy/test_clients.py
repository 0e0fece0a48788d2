"""Client identification: IPs, CIDRs (v4/v6), ranges, MACs; most specific wins."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.policy.clients import (
    ClientMap,
    StaticNeighbours,
    normalize_mac,
    parse_client,
)


def cmap(*entries: tuple[str, str]) -> ClientMap:
    return ClientMap([parse_client(text, group, "p.yaml", i + 1)
                      for i, (text, group) in enumerate(entries)])


def test_parse_kinds():
    assert parse_client("10.0.0.0/8", "g", "f", 1).kind == "cidr"
    assert parse_client("2001:db8::/32", "g", "f", 1).kind == "cidr"
    assert parse_client("10.0.0.1", "g", "f", 1).kind == "ip"
    r = parse_client("10.0.0.1 - 10.0.0.9", "g", "f", 1)
    assert (r.kind, r.text, r.size) == ("range", "10.0.0.1-10.0.0.9", 9)
    assert parse_client("AA-BB-CC-DD-EE-FF", "g", "f", 1).text == "aa:bb:cc:dd:ee:ff"
    assert normalize_mac("aabb.ccdd.eeff") == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize("bad", ["10.0.0.1/24", "10.0.0.0/33", "10.0.0.9-10.0.0.1",
                                 "10.0.0.1-2001:db8::1", "school", "", "aa:bb:cc:dd:ee"])
def test_parse_errors(bad):
    with pytest.raises(ValueError):
        parse_client(bad, "g", "f", 1)


def test_most_specific_wins():
    m = cmap(("10.0.0.0/8", "wide"), ("10.1.0.0/16", "mid"), ("10.1.2.0/24", "narrow"),
             ("10.1.2.7", "one"), ("10.1.2.100-10.1.2.120", "range"),
             ("10.1.3.0-10.1.4.255", "bigrange"), ("2001:db8::/32", "v6wide"),
             ("2001:db8:1::/48", "v6narrow"), ("aa:bb:cc:dd:ee:ff", "mac"))
    assert m.lookup("10.9.9.9").group == "wide"
    assert m.lookup("10.1.9.9").group == "mid"
    assert m.lookup("10.1.2.9").group == "narrow"
    assert m.lookup("10.1.2.7").group == "one"
    assert m.lookup("10.1.2.110").group == "range"       # 21 addresses beat a /24
    assert m.lookup("10.1.3.5").group == "bigrange"      # 512 addresses beat a /16
    assert m.lookup("10.1.2.7", "aa:bb:cc:dd:ee:ff").group == "mac"
    assert m.lookup("2001:db8:1::5").group == "v6narrow"
    assert m.lookup("2001:db8:2::5").group == "v6wide"
    assert m.lookup("192.168.1.1") is None
    assert m.lookup("::ffff:10.1.2.7").group == "one"


def test_conflicts():
    rules = [parse_client(t, g, "f", i) for i, (t, g) in enumerate(
        [("10.0.0.0/24", "a"), ("10.0.0.0/24", "b"), ("10.0.0.5", "a"), ("10.0.0.5", "c"),
         ("AA:BB:CC:DD:EE:FF", "a"), ("aa-bb-cc-dd-ee-ff", "d"), ("10.0.0.0-10.0.0.255", "e")])]
    pairs = [(a.group, b.group) for a, b in ClientMap.conflicts(rules)]
    # a range covering exactly a CIDR's addresses is the same set: neither is more specific
    assert pairs == [("a", "b"), ("a", "c"), ("a", "d"), ("a", "e")]


def test_static_neighbours():
    n = StaticNeighbours({"10.0.0.5": "AA-BB-CC-DD-EE-01"})
    assert n.mac_for("10.0.0.5") == "aa:bb:cc:dd:ee:01" and n.mac_for("10.0.0.6") is None


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(8, 30), min_size=1, max_size=6))
def test_longest_prefix_matches_reference(addr, prefixes):
    ip = ipaddress.IPv4Address(addr)
    nets = [ipaddress.ip_network(f"{ip}/{p}", strict=False) for p in set(prefixes)]
    m = ClientMap([parse_client(str(n), f"g{n.prefixlen}", "f", 1) for n in nets])
    assert m.lookup(str(ip)).group == f"g{max(prefixes)}"
