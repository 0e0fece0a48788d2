from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.errors import ListError
from filterd.lists.parsers import ut1
from tests.lists.ut1_tar import split_bytes, ut1_tarball

NAMES = ["example.com", "bücher.de", "foo_bar.example.org", "casino.vn", "192.0.2.9"]
DOMAINS = "\n".join(NAMES).encode() + b"\n"


def test_domains_urls_expressions_usage() -> None:
    data = ut1_tarball("adult", {
        "domains": DOMAINS,
        "urls": b"Blog.Example.net/Porn/Page\nwww.site.com/x\nnopath.com\n",
        "expressions": b"(^|[-./])sexy?cam\n(unbalanced\n",
        "usage": b"# usage\nblack\n",
    }, prefix="blacklists/")
    r = ut1.parse(data, category="adult")
    assert r.subtree == ("example.com", "xn--bcher-kva.de", "foo_bar.example.org", "casino.vn")
    assert r.ips == ("192.0.2.9",)
    assert r.urls == ("blog.example.net/Porn/Page", "site.com/x")
    assert r.expressions == ("(^|[-./])sexy?cam",)
    assert r.rejects == {"bad_url": 1, "bad_expression": 1}
    assert r.usage == "black"


def test_usage_white_is_an_allow_list() -> None:
    r = ut1.parse(ut1_tarball("bank", {"domains": b"vietcombank.com.vn\n", "usage": b"white\n"}))
    assert r.usage == "white"


def test_split_pieces_joined_before_parsing_even_mid_line() -> None:
    cut = DOMAINS.index(b"mple.com")   # cut inside "example.com"
    files = split_bytes(DOMAINS, [cut, cut + 20])
    assert not files["domains.0"].endswith(b"\n")
    r = ut1.parse(ut1_tarball("adult", dict(reversed(list(files.items()))), prefix="./"))
    assert r.subtree == ut1.parse(ut1_tarball("adult", {"domains": DOMAINS})).subtree
    assert "exa" not in r.subtree and r.rejected == 0


def test_pieces_are_ordered_numerically() -> None:
    data = b"".join(f"n{i}.example.com\n".encode() for i in range(12))
    files = split_bytes(data, list(range(7, len(data), 17)))
    assert len(files) > 10   # domains.10 must come after domains.9
    r = ut1.parse(ut1_tarball("adult", files))
    assert r.subtree == tuple(f"n{i}.example.com" for i in range(12))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(DOMAINS) - 1), max_size=6))
def test_any_byte_split_parses_like_the_whole(cuts: list[int]) -> None:
    whole = ut1.parse(ut1_tarball("adult", {"domains": DOMAINS}))
    split = ut1.parse(ut1_tarball("adult", split_bytes(DOMAINS, cuts)))
    assert split == whole


def test_picks_the_named_category() -> None:
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for cat, body in (("agressif", b"violent.example\n"), ("drogue", b"drug.example\n")):
            info = tarfile.TarInfo(f"{cat}/domains")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    assert ut1.parse(buf.getvalue(), category="drogue").subtree == ("drug.example",)
    with pytest.raises(ListError, match="categories"):
        ut1.parse(buf.getvalue(), category="adult")


@pytest.mark.parametrize("damage", ["truncated", "trailer", "garbage", "no_domains", "bomb"])
def test_broken_tarballs_are_list_errors(damage: str) -> None:
    good = ut1_tarball("adult", {"domains": DOMAINS * 50})
    data = {
        "truncated": good[: len(good) // 2],
        "trailer": good[:-3],   # only the gzip CRC/length trailer is cut
        "garbage": b"<html>not a tarball</html>",
        "no_domains": ut1_tarball("adult", {"usage": b"black\n"}),
        "bomb": good,
    }[damage]
    limit = 1000 if damage == "bomb" else ut1.MAX_UNPACKED
    with pytest.raises(ListError) as err:
        ut1.parse(data, category="adult", source="ut1-adult", max_unpacked=limit)
    assert err.value.source == "ut1-adult"
