"""Policy entry names: punycode, lowercase, TLD entries, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.policy.names import InvalidName, normalize_name, parents


@pytest.mark.parametrize(("raw", "expected"), [
    ("Example.COM.", "example.com"),
    ("trường.vn", "xn--trng-rib8295b.vn"),
    ("Bücher.example", "xn--bcher-kva.example"),
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("xxx", "xxx"),
])
def test_normalize(raw, expected):
    assert normalize_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "a..b", "*.example.com", "bad name.vn", "10.0.0.1",
                                 "a" * 64 + ".vn"])
def test_invalid(raw):
    with pytest.raises(InvalidName):
        normalize_name(raw)


def test_parents():
    assert parents("a.b.c") == ["a.b.c", "b.c", "c"]
    assert parents("vn") == ["vn"]


@given(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
                min_size=1, max_size=5))
def test_ascii_names_are_fixed_points(labels):
    name = ".".join(labels)
    if name.replace(".", "").isdigit() and len(labels) == 4:
        return  # that is an IPv4 address
    assert normalize_name(name) == name
    assert normalize_name(name.upper() + ".") == name
