from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filterd.lists.parsers import hosts

NAMES = st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,15}\.(com|vn)", fullmatch=True),
                 min_size=1, max_size=20)


def test_hosts_file() -> None:
    data = b"""# Title: hostsVN
127.0.0.1 localhost
::1 localhost ip6-localhost
0.0.0.0 ads.example.com   tracker.example.com # two names
127.0.0.1\tBad.Example.Com.
0.0.0.0 0.0.0.0
0.0.0.0 192.0.2.5
example.org
not-an-ip example.net
"""
    r = hosts.parse(data)
    assert r.exact == ("ads.example.com", "tracker.example.com", "bad.example.com")
    assert r.subtree == ()
    assert r.ips == ("192.0.2.5",)
    assert r.rejects["local_name"] == 4
    assert r.rejects["malformed"] == 1
    assert r.rejects["bad_address"] == 1


@given(NAMES, st.sampled_from(["0.0.0.0", "127.0.0.1", "::"]), st.sampled_from([" ", "\t", "  "]))
def test_hosts_lines_roundtrip(names: list[str], address: str, sep: str) -> None:
    data = "\n".join(f"{address}{sep}{n}" for n in names).encode()
    r = hosts.parse(data)
    assert list(r.exact) == list(dict.fromkeys(names))
