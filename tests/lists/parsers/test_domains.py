from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filterd.lists.parsers import domains

NAMES = st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,15}\.(com|vn|org)", fullmatch=True),
                 max_size=30)


def test_plain_list_with_comments() -> None:
    data = (b"\xef\xbb\xbf# hostsVN\nExample.com\n\nwww.example.com # www variant\n"
            b"1.2.3.4\nbad name\n*.x.com\n")
    r = domains.parse(data, exact=True)
    assert r.exact == ("example.com", "www.example.com")
    assert r.subtree == ()
    assert r.ips == ("1.2.3.4",)
    assert dict(r.rejects) == {"malformed": 1, "wildcard": 1}


def test_subtree_mode_and_dedupe() -> None:
    r = domains.parse(b"a.com\nA.com.\nb.vn\r\n")
    assert r.subtree == ("a.com", "b.vn") and r.exact == ()


def test_idna_and_underscore() -> None:
    r = domains.parse("bücher.de\nfoo_bar.example.com\n".encode())
    assert r.subtree == ("xn--bcher-kva.de", "foo_bar.example.com")


def test_invalid_utf8_is_rejected_not_fatal() -> None:
    r = domains.parse(b"ok.com\n\xff\xfe.com\n")
    assert r.subtree == ("ok.com",) and r.rejected == 1


@given(NAMES, st.booleans())
def test_every_listed_name_comes_back_once(names: list[str], exact: bool) -> None:
    data = "\n".join(["# header", *names, *names]).encode()
    r = domains.parse(data, exact=exact)
    got = r.exact if exact else r.subtree
    assert list(got) == list(dict.fromkeys(names))
    assert r.rejected == 0
