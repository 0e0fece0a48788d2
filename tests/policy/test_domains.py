"""Domain tables: exact vs domain-and-subdomains entries; layered precedence."""

from __future__ import annotations

import pytest

from filterd.policy.decision import RuleSource
from filterd.policy.domains import DomainEntry, DomainTable, LayeredTable, parse_entry
from filterd.policy.names import parents

SRC = RuleSource("policy", "p.yaml", line=1)


def table(*entries: str) -> DomainTable:
    return DomainTable(DomainEntry(*parse_entry(e), SRC) for e in entries)


def test_parse_entry():
    assert parse_entry("Example.com") == ("example.com", False)
    assert parse_entry("=www.Example.com.") == ("www.example.com", True)
    with pytest.raises(ValueError, match="covers its subdomains"):
        parse_entry("*.example.com")


def test_match_exact_and_subdomains():
    t = table("example.com", "=host.example.net", "deep.example.com")
    assert t.match(parents("a.example.com")).rule == "example.com"
    assert t.match(parents("x.deep.example.com")).rule == "deep.example.com"
    assert t.match(parents("host.example.net")).rule == "=host.example.net"
    assert t.match(parents("a.host.example.net")) is None
    assert t.match(parents("example.org")) is None


def test_layered_lowest_rank_wins_anywhere_in_the_chain():
    lt = LayeredTable([(5, table("a.example.com")), (1, table("example.com")),
                       (3, table("=b.a.example.com"))])
    assert lt.match(parents("b.a.example.com"))[0] == 1
    lt = LayeredTable([(5, table("a.example.com")), (3, table("=b.a.example.com"))])
    assert lt.match(parents("b.a.example.com"))[0] == 3
    assert lt.match(parents("c.a.example.com"))[0] == 5
    assert lt.match(parents("example.com")) is None
