from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.errors import IndexFormatError, ListError
from filterd.lists.index import (
    CompileSource,
    ListIndex,
    MemoryIndex,
    compile_index,
    open_current,
    reverse_key,
    swap_current,
)
from filterd.lists.model import ListHit, ParseResult, SourceInfo


def src(name: str, category: str, *, usage: str = "black",
        **kinds: tuple[str, ...]) -> CompileSource:
    result = ParseResult(**kinds, usage=usage)
    return CompileSource(SourceInfo(name, category, "v1", result.count, "MIT", usage=usage), result)


SOURCES = [
    src("ut1-adult", "adult", subtree=("example.com", "bad.org"), ips=("192.0.2.7",),
        urls=("blog.example.net/porn",), expressions=(r"(^|[-./])sexy?cam",)),
    src("hostsvn-gambling", "gambling", exact=("www.example.com", "casino.vn")),
    src("ut1-games", "games", subtree=("example.com", "play.example.com")),
    src("ut1-bank", "bank", usage="white", subtree=("vietcombank.com.vn",)),
]


@pytest.fixture
def compiled(tmp_path: Path) -> ListIndex:
    built = compile_index(SOURCES, tmp_path)
    swap_current(tmp_path, built)
    return open_current(tmp_path)


@pytest.fixture(params=["disk", "memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> ListIndex:
    if request.param == "disk":
        return ListIndex.open(swap_current(tmp_path, compile_index(SOURCES, tmp_path)))
    return MemoryIndex.from_entries(
        {"example.com": {"adult", "games"}, "bad.org": {"adult"}, "www.example.com": {"gambling"},
         "casino.vn": {"gambling"}, "play.example.com": {"games"}},
        exact={"www.example.com", "casino.vn"},
        urls={"blog.example.net/porn": {"adult"}}, ips={"192.0.2.7": {"adult"}},
        allow={"vietcombank.com.vn": {"bank"}})


def test_reverse_key() -> None:
    assert reverse_key("www.example.com") == "com.example.www"


def test_subtree_entry_matches_name_and_subdomains(index: ListIndex) -> None:
    (hit,) = index.lookup("a.b.bad.org")
    assert hit.domain == "bad.org" and hit.categories == {"adult"} and not hit.exact
    assert index.lookup("bad.org")[0].domain == "bad.org"
    assert index.lookup("notbad.org") == ()
    assert index.lookup("org") == ()


def test_exact_entry_matches_only_that_host(index: ListIndex) -> None:
    assert [h.domain for h in index.lookup("casino.vn")] == ["casino.vn"]
    assert index.lookup("casino.vn")[0].exact
    assert index.lookup("m.casino.vn") == ()


def test_most_specific_first_and_exact_before_subtree(index: ListIndex) -> None:
    hits = index.lookup("www.example.com")
    assert [(h.domain, h.exact) for h in hits] == [("www.example.com", True),
                                                   ("example.com", False)]
    assert hits[0].categories == {"gambling"}
    assert hits[1].categories == {"adult", "games"}
    deep = index.lookup("x.play.example.com")
    assert [h.domain for h in deep] == ["play.example.com", "example.com"]
    # exact www.example.com does not cover its subdomains
    assert [h.domain for h in index.lookup("a.www.example.com")] == ["example.com"]


def test_lookup_is_case_and_trailing_dot_insensitive(index: ListIndex) -> None:
    assert index.lookup("WWW.Example.COM.") == index.lookup("www.example.com")


def test_sources_merge_per_name(compiled: ListIndex) -> None:
    (_, hit) = compiled.lookup("www.example.com")
    assert hit.sources == ("ut1-adult", "ut1-games")
    assert compiled.sources["hostsvn-gambling"].license == "MIT"
    assert compiled.sources["ut1-adult"].count == 4


def test_white_list_gives_allow_categories_not_block(index: ListIndex) -> None:
    (hit,) = index.lookup("www.vietcombank.com.vn")
    assert hit.categories == frozenset()
    assert hit.allow_categories == {"bank"}


def test_ips_kept_apart(index: ListIndex) -> None:
    assert "192.0.2.7" in index.ips
    assert index.ips["192.0.2.7"].categories == {"adult"}
    assert "192.0.2.8" not in index.ips
    assert list(index.ips) == ["192.0.2.7"]
    assert index.lookup("192.0.2.7") == ()


def test_url_match_prefix_with_parents(index: ListIndex) -> None:
    hit = index.url_match("http://www.blog.example.net/porn/page.html")
    assert hit is not None and hit.categories == {"adult"}
    assert index.url_match("https://blog.example.net/porn?x=1") is not None
    assert index.url_match("http://blog.example.net/other") is None
    assert index.url_match("http://blog.example.net/Porn") is None  # paths are case-sensitive


def test_url_expressions(compiled: ListIndex) -> None:
    hit = compiled.url_match("http://free-sexcam.example/")
    assert hit is not None and hit.categories == {"adult"}
    assert compiled.url_match("http://school.edu.vn/") is None


def test_counts_and_len(compiled: ListIndex) -> None:
    assert len(compiled) == 6
    assert compiled.counts["ips"] == 1 and compiled.counts["exact"] == 2


def test_swap_keeps_previous_and_prunes(tmp_path: Path) -> None:
    versions = []
    for n in range(4):
        built = compile_index([src("a", "adult", subtree=(f"n{n}.com",))], tmp_path,
                              version=f"v{n}")
        swap_current(tmp_path, built)
        versions.append(open_current(tmp_path).version)
    assert versions == ["v0", "v1", "v2", "v3"]
    assert sorted(p.name for p in tmp_path.glob("index-*")) == ["index-v2", "index-v3"]
    assert os.readlink(tmp_path / "current") == "index-v3"


def test_open_mapped_index_survives_swap(tmp_path: Path) -> None:
    old = ListIndex.open(swap_current(tmp_path, compile_index([src("a", "adult",
                                                                 subtree=("old.com",))], tmp_path)))
    for n in range(3):
        swap_current(tmp_path, compile_index([src("a", "adult", subtree=(f"new{n}.com",))],
                                             tmp_path, version=f"n{n}"))
    assert old.lookup("old.com")[0].domain == "old.com"   # files unlinked, mapping alive
    assert open_current(tmp_path).lookup("old.com") == ()


def test_duplicate_source_rejected(tmp_path: Path) -> None:
    with pytest.raises(ListError):
        compile_index([src("a", "adult"), src("a", "games")], tmp_path)


def test_open_missing(tmp_path: Path) -> None:
    with pytest.raises(IndexFormatError, match="no list index"):
        ListIndex.open(tmp_path / "current")


@pytest.mark.parametrize("damage", ["magic", "format", "truncate", "json", "missing"])
def test_open_damaged_index(tmp_path: Path, damage: str) -> None:
    built = compile_index(SOURCES, tmp_path)
    meta_path = built / "meta.json"
    meta = json.loads(meta_path.read_text())
    if damage == "magic":
        meta["magic"] = "something"
        meta_path.write_text(json.dumps(meta))
    elif damage == "format":
        meta["format"] = 99
        meta_path.write_text(json.dumps(meta))
    elif damage == "truncate":
        data = (built / "names.marisa").read_bytes()
        (built / "names.marisa").write_bytes(data[: len(data) // 2])
    elif damage == "json":
        meta_path.write_text("{not json")
    else:
        (built / "names.values").unlink()
    with pytest.raises(IndexFormatError):
        ListIndex.open(built)


def test_swap_refuses_broken_index(tmp_path: Path) -> None:
    good = compile_index(SOURCES, tmp_path, version="good")
    swap_current(tmp_path, good)
    bad = compile_index(SOURCES, tmp_path, version="bad")
    (bad / "names.values").write_bytes(b"")
    with pytest.raises(IndexFormatError):
        swap_current(tmp_path, bad)
    assert open_current(tmp_path).version == "good"


def test_overlapping_sources_merge_categories(tmp_path: Path) -> None:
    sources = [src(f"s{i}", f"c{i}",
                   subtree=tuple(f"n{j}.com" for j in range(i % 2, 400, 1 + i % 7)))
               for i in range(17)]
    idx = ListIndex.open(compile_index(sources, tmp_path))
    expected = {f"c{i}" for i in range(17) if i % 2 <= 6 and (6 - i % 2) % (1 + i % 7) == 0}
    (hit,) = idx.lookup("n6.com")
    assert hit.categories == expected
    assert hit.sources == tuple(f"s{i}" for i in range(17) if f"c{i}" in expected)


def test_more_than_65535_category_sets_use_32_bit_values(tmp_path: Path) -> None:
    # name j is in source k when bit k of j is set: 70000 distinct category sets
    n = 70_000
    sources = [src(f"s{k}", f"c{k}", subtree=tuple(f"n{j}.com" for j in range(n) if j >> k & 1))
               for k in range(17)]
    built = compile_index(sources, tmp_path)
    assert json.loads((built / "meta.json").read_text())["value_type"] == "I"
    idx = ListIndex.open(built)
    for j in (1, 65_535, 65_536, 69_999):
        assert idx.lookup(f"n{j}.com")[0].categories == {f"c{k}" for k in range(17) if j >> k & 1}


def test_listhit_is_a_value() -> None:
    a = ListHit("a.com", frozenset({"adult"}), ("s",))
    assert a == ListHit("a.com", frozenset({"adult"}), ("s",), False)
    with pytest.raises(AttributeError):
        a.domain = "b.com"  # type: ignore[misc]


LABELS = st.sampled_from(["a", "b", "c", "www", "xn--bcher-kva", "_x", "co", "vn"])
NAME = st.lists(LABELS, min_size=2, max_size=4).map(".".join)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(NAME, st.sets(st.sampled_from(["adult", "games", "vpn"]), min_size=1),
                       max_size=25),
       st.sets(NAME, max_size=10), st.lists(NAME, min_size=1, max_size=10))
def test_lookup_agrees_with_a_parent_walk(entries: dict[str, set[str]], exact: set[str],
                                          queries: list[str]) -> None:
    index = MemoryIndex.from_entries(entries, exact=exact)
    for q in queries:
        labels = q.split(".")
        parents = [".".join(labels[i:]) for i in range(len(labels))]
        expected = [(p, p in exact, frozenset(entries[p])) for p in parents
                    if p in entries and (p not in exact or p == q)]
        got = [(h.domain, h.exact, h.categories) for h in index.lookup(q)]
        assert got == expected


def test_trie_levels_follow_the_byte_budget(tmp_path: Path) -> None:
    import random

    rnd = random.Random(1)
    compressible = tuple(f"shop{i}.example.com" for i in range(20_000))
    noise = tuple("".join(rnd.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=24)) + ".com"
                  for _ in range(20_000))
    levels = {}
    for label, names in (("compressible", compressible), ("noise", noise)):
        built = compile_index([src("s", "adult", subtree=names)], tmp_path / label)
        meta = json.loads((built / "meta.json").read_text())
        levels[label] = meta["num_tries"]
        size = sum(p.stat().st_size for p in built.iterdir() if p.name != "meta.json")
        assert size <= 16 * len(names) or levels[label] == 3
        idx = ListIndex.open(built)
        assert idx.lookup("www." + names[123])[0].domain == names[123]
    assert levels == {"compressible": 1, "noise": 3}


def test_memory_index_normalises_names() -> None:
    index = MemoryIndex.from_entries({"Bücher.DE.": {"adult"}, "WWW.Casino.vn": {"gambling"}},
                                     exact={"www.casino.VN"})
    assert index.lookup("shop.xn--bcher-kva.de")[0].domain == "xn--bcher-kva.de"
    assert index.lookup("www.casino.vn")[0].exact
    with pytest.raises(ListError, match="not a valid"):
        MemoryIndex.from_entries({"bad name": {"adult"}})


def test_index_files_are_memory_mapped_and_work_across_fork(tmp_path: Path) -> None:
    import multiprocessing

    built = compile_index(SOURCES, tmp_path)
    index = ListIndex.open(built)
    maps = Path("/proc/self/maps").read_text()
    assert str(built / "names.marisa") in maps and str(built / "names.values") in maps
    _FORKED["index"] = index   # inherited by the forked workers: the same mapping, no copy
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(_domains_of, ["a.bad.org", "www.example.com"])
    finally:
        _FORKED.clear()
    assert got == [["bad.org"], ["www.example.com", "example.com"]]


_FORKED: dict[str, ListIndex] = {}


def _domains_of(name: str) -> list[str]:
    return [h.domain for h in _FORKED["index"].lookup(name)]
