from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.lists.normalize import IP, NAME, REJECT, classify, normalize_name

LABEL = st.from_regex(r"[a-z0-9_][a-z0-9_-]{0,20}", fullmatch=True)
NAMES = st.lists(LABEL, min_size=2, max_size=5).map(".".join)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Example.COM.", "example.com"),
    ("  www.example.com  ", "www.example.com"),
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("a_b.example.com", "a_b.example.com"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("BÜCHER.de", "xn--bcher-kva.de"),
    ("ví-dụ.vn", "xn--v-d-rma6749a.vn"),
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("例え。テスト", "xn--r8jz45g.xn--zckzah"),   # ideographic full stop is a dot
    ("cá-độ_bóng.vn", None),   # underscore in a Unicode label: not valid IDNA
])
def test_names(raw: str, expected: str | None) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("localhost", "single_label"),
    ("a..b.com", "empty_label"),
    ("a b.com", "bad_char"),
    ("exa$mple.com", "bad_char"),
    ("*.example.com", "wildcard"),
    ("x" * 64 + ".com", "label_too_long"),
    (".".join(["abcdefghi"] * 26), "too_long"),
    ("300.1.2.3", "bad_ip"),
    ("xn--a.\u200b.com", "bad_idna"),
])
def test_rejects(raw: str, reason: str) -> None:
    assert classify(raw) == (REJECT, reason)


def test_ipv4_kept_apart() -> None:
    assert classify("192.0.2.1") == (IP, "192.0.2.1")
    assert classify("010.000.002.001") == (IP, "10.0.2.1")


@given(NAMES)
def test_valid_ascii_names_are_fixed_points(name: str) -> None:
    kind, value = classify(name)
    if kind == NAME:
        assert value == name
        assert classify(value) == (NAME, value)
    else:
        assert kind in (IP, REJECT)


@given(NAMES, st.booleans(), st.booleans())
def test_case_and_trailing_dot_do_not_matter(name: str, upper: bool, dot: bool) -> None:
    raw = (name.upper() if upper else name) + ("." if dot else "")
    assert classify(raw) == classify(name)


@given(st.text(max_size=80))
def test_any_text_is_classified_and_names_are_idempotent(raw: str) -> None:
    kind, value = classify(raw)
    assert kind in (NAME, IP, REJECT)
    if kind == NAME:
        assert value.isascii() and value == value.lower() and not value.endswith(".")
        assert len(value) <= 253 and all(0 < len(label) <= 63 for label in value.split("."))
        assert classify(value) == (NAME, value)
