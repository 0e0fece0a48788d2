from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filterd.lists.parsers import adblock

NAMES = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}\.(com|vn)", fullmatch=True),
                 min_size=1, max_size=20)


def test_only_pure_domain_rules_kept() -> None:
    data = b"""[Adblock Plus 2.0]
! Title: test
||ads.example.com^
||Tracker.Example.org^$important
||x.example.net^|
||third.example.com^$third-party
@@||allowed.example.com^
example.com##.banner
||example.com/ads/*
/banner/*
||*.wild.com^
||noanchor.example.com
||1.2.3.4^
"""
    r = adblock.parse(data)
    assert r.subtree == ("ads.example.com", "tracker.example.org", "x.example.net")
    assert r.ips == ("1.2.3.4",)
    assert dict(r.rejects) == {"options": 1, "exception": 1, "cosmetic": 1,
                               "not_domain_rule": 4}


@given(NAMES, st.lists(st.sampled_from(["! c", "@@||a.com^", "a.com##x", "||a.com/p^", "/x/"]),
                       max_size=5))
def test_domain_rules_survive_noise(names: list[str], noise: list[str]) -> None:
    lines = [f"||{n}^" for n in names] + noise
    r = adblock.parse("\n".join(lines).encode())
    assert list(r.subtree) == list(dict.fromkeys(names))
    assert r.rejected == sum(1 for n in noise if not n.startswith("!"))
