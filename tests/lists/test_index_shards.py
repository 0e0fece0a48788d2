"""The name trie split into shards (issue 19: a compile of 5 M keys in 250 MiB) answers
every lookup like one trie of the same sources.

Differential: the same sources compiled with one trie (`SHARD_KEYS` huge) and with the
shard size forced down to a few keys, so that most groups start a shard; every lookup
(listed names, their parents and subdomains, unlisted names, IDN, one-label keys,
exact against subtree, IPs, URLs, trailing dots, capitals) must give the same hits.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.errors import IndexFormatError
from filterd.lists import index as index_mod
from filterd.lists.index import CompileSource, ListIndex, MemoryIndex, compile_index
from filterd.lists.model import ParseResult, SourceInfo


def src(name: str, category: str, *, usage: str = "black",
        **kinds: tuple[str, ...]) -> CompileSource:
    result = ParseResult(**kinds, usage=usage)
    return CompileSource(SourceInfo(name, category, "v1", result.count, usage=usage), result)


def build(sources: list[CompileSource], out: Path, shard_keys: int,
          monkeypatch: pytest.MonkeyPatch) -> ListIndex:
    with monkeypatch.context() as m:
        m.setattr(index_mod, "SHARD_KEYS", shard_keys)
        return ListIndex.open(compile_index(sources, out, version="v"))


def answers(index: ListIndex, queries: list[str], urls: list[str]) -> list[object]:
    return ([(q, index.lookup(q)) for q in queries]
            + [(u, index.url_match(u)) for u in urls]
            + [sorted(index.ips.items()), len(index.ips), dict(index.counts), len(index),
               sorted((d, e, h) for d, e, h in index.entries())])


def queries_for(names: list[str], rnd: random.Random, extra: list[str]) -> list[str]:
    out = list(extra)
    for n in names:
        labels = n.split(".")
        out += [n, "www." + n, "a.b." + n, n + ".", n.upper()]
        out += [".".join(labels[i:]) for i in range(1, len(labels))]   # its parents
        out.append(rnd.choice("xyz") + n[1:])                           # a near miss
    return out


LABEL = st.sampled_from(["a", "b", "c", "www", "xn--bcher-kva", "_x", "co", "vn", "com", "0",
                         "a-b", "xn--p1ai"])
NAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
IP = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sets(NAME, max_size=30), min_size=1, max_size=3), st.sets(NAME, max_size=10),
       st.sets(IP, max_size=4), st.sets(NAME, max_size=4), st.integers(1, 6),
       st.lists(NAME, max_size=20))
def test_sharded_lookups_equal_one_trie(subtrees: list[set[str]], exact: set[str],
                                        ips: set[str], allow: set[str], shard_keys: int,
                                        unlisted: list[str]) -> None:
    import tempfile

    sources = [src(f"s{i}", f"c{i}", subtree=tuple(sorted(names)))
               for i, names in enumerate(subtrees)]
    sources += [src("ex", "gambling", exact=tuple(sorted(exact)), ips=tuple(sorted(ips)),
                    urls=("blog.a.vn/p", "co.vn/x")),
                src("ok", "bank", usage="white", subtree=tuple(sorted(allow)))]
    names = sorted(set().union(*subtrees) | exact | allow)
    extra = [*unlisted, "vn", "com", "vn.", "x.vn", "a.com", "4.3.2.1", "", "."]
    queries = queries_for(names, random.Random(len(names)), extra) + sorted(ips)
    urls = ["http://blog.a.vn/p/q", "co.vn/x", "http://www.co.vn/x?y", "http://a.vn/"]
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        one = build(sources, Path(d) / "one", 10**9, mp)
        many = build(sources, Path(d) / "many", shard_keys, mp)
        assert one.shards == 0
        assert answers(many, queries, urls) == answers(one, queries, urls)
        assert {ip: h for ip, h in many.ips.items()} == {ip: many.ips[ip] for ip in ips}


def generated(rnd: random.Random, n: int) -> list[str]:
    tlds = ["com", "net", "vn", "com.vn", "de", "xn--p1ai", "co.uk", "org"]
    letters = "abcdefghijklmnopqrstuvwxyz0123456789-"
    names = set()
    while len(names) < n:
        base = rnd.choice("abcdefghij") + "".join(rnd.choices(letters, k=rnd.randint(0, 6)))
        tld = rnd.choice(tlds)
        depth = rnd.random()
        if depth < 0.5:
            names.add(f"{base}.{tld}")
        elif depth < 0.8:
            names.add(f"{rnd.choice(['www', 'm', 'cdn', 'xn--bcher-kva'])}.{base}.{tld}")
        else:
            names.add(f"x{rnd.randrange(50)}.{rnd.choice(['a', 'b'])}.{base}.{tld}")
    return sorted(names)


def test_many_shards_seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """6 000 names in shards of ~500 keys: ~15 shards, every group whole in one shard,
    the same answers as one trie for 60 000 queries."""
    rnd = random.Random(19)
    names = generated(rnd, 6_000)
    subtree_a, subtree_b = names[::2], names[::3]
    exact = names[1::5]
    sources = [src("ut1-adult", "adult", subtree=tuple(subtree_a), ips=("192.0.2.1", "10.0.0.9")),
               src("other", "games", subtree=(*tuple(subtree_b), "vn", "xn--p1ai")),
               src("hosts", "gambling", exact=(*tuple(exact), "com")),
               src("allow", "bank", usage="white", subtree=tuple(names[7::11]))]
    one = build(sources, tmp_path / "one", 10**9, monkeypatch)
    many = build(sources, tmp_path / "many", 500, monkeypatch)
    meta = json.loads((many.path / "meta.json").read_text())  # type: ignore[operator]
    assert many.shards == len(meta["shards"]) >= 10
    assert meta["top_labels"] == ["#10", "#192", "com", "vn", "xn--p1ai"]
    bounds = [s["from"] for s in meta["shards"]]
    assert bounds[0] == "" and bounds == sorted(bounds)
    assert sum(s["keys"] for s in meta["shards"]) + 5 == meta["counts"]["keys"]
    # every group (first two reversed labels) in exactly one shard
    where: dict[str, set[int]] = {}
    for i, shard in enumerate(many._shard_tries):
        for key in shard.iterkeys():
            where.setdefault(".".join(key.split(".")[:2]), set()).add(i)
    assert all(len(s) == 1 for s in where.values())
    queries = queries_for(names, rnd, ["vn", "a.vn", "com", "x.com", "ru", "192.0.2.1"])
    queries += generated(random.Random(5), 2_000)          # mostly unlisted
    assert answers(many, queries, []) == answers(one, queries, [])
    assert [h.domain for h in many.lookup("www.a.vn")][-1] == "vn"
    assert many.ips["192.0.2.1"].categories == {"adult"}


def test_a_small_list_keeps_one_trie(tmp_path: Path) -> None:
    index = ListIndex.open(compile_index([src("s", "adult", subtree=("a.com", "vn"))], tmp_path))
    meta = json.loads((index.path / "meta.json").read_text())  # type: ignore[operator]
    assert index.shards == 0 and meta["shards"] == [] and meta["format"] == 2
    assert sorted(p.name for p in index.path.iterdir()) == [  # type: ignore[union-attr]
        "meta.json", "names.marisa", "names.values", "urls.marisa", "urls.values"]


def test_memory_index_sharded(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {f"n{i}.{t}": {"adult"} for i in range(40) for t in ("com", "vn", "com.vn")}
    one = MemoryIndex.from_entries(entries, exact={"n3.com"})
    monkeypatch.setattr(index_mod, "SHARD_KEYS", 10)
    many = MemoryIndex.from_entries(entries, exact={"n3.com"})
    assert many.shards >= 5 and one.shards == 0
    for q in [*entries, "www.n3.com", "n3.com", "x.n3.com.vn", "x.vn", "vn", "com"]:
        assert many.lookup(q) == one.lookup(q)


@pytest.fixture
def sharded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(index_mod, "SHARD_KEYS", 5)
    names = tuple(f"n{i}.d{i % 7}.com" for i in range(60))
    return compile_index([src("s", "adult", subtree=(*names, "vn"))], tmp_path)


def test_another_format_is_refused_by_name(sharded: Path) -> None:
    meta = json.loads((sharded / "meta.json").read_text())
    for bad in (0, 3, "2"):
        meta["format"] = bad
        (sharded / "meta.json").write_text(json.dumps(meta))
        with pytest.raises(IndexFormatError, match=f"index format {bad!r}, this filterd "
                                                   "reads formats 1 and 2"):
            ListIndex.open(sharded)
    meta["format"] = 1           # a format-1 manifest never had shards: not read as one
    (sharded / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFormatError, match="index format 1"):
        ListIndex.open(sharded)


def test_an_index_of_format_1_is_read_as_one_trie(tmp_path: Path) -> None:
    """An upgrade keeps the full lists it had compiled: format 1 (written before shards,
    its manifest without a shard list) is format 2 with one trie."""
    names = tuple(f"n{i}.d{i % 7}.com" for i in range(60))
    built = compile_index([src("s", "adult", subtree=(*names, "vn"), exact=("x.d1.com",))],
                          tmp_path)
    now = ListIndex.open(built)
    meta = json.loads((built / "meta.json").read_text())
    assert meta["shards"] == []
    meta["format"] = 1
    del meta["shards"], meta["top_labels"]      # as format 1 wrote it
    (built / "meta.json").write_text(json.dumps(meta))
    old = ListIndex.open(built)
    for q in [*names, "www.n3.d3.com", "x.d1.com", "y.x.d1.com", "a.b.vn", "vn", "com"]:
        assert old.lookup(q) == now.lookup(q)
    assert old.lookup("a.b.vn")[0].sources == ("s",)


@pytest.mark.parametrize("damage", ["missing shard", "short shard", "bounds", "first bound",
                                    "shard keys", "no shard list"])
def test_a_damaged_shard_is_refused(sharded: Path, damage: str) -> None:
    meta = json.loads((sharded / "meta.json").read_text())
    assert len(meta["shards"]) >= 3
    if damage == "missing shard":
        (sharded / "names-2.marisa").unlink()
    elif damage == "short shard":
        (sharded / "names-3.values").write_bytes(b"\0\0")
    elif damage == "bounds":
        meta["shards"][1]["from"], meta["shards"][2]["from"] = (meta["shards"][2]["from"],
                                                                meta["shards"][1]["from"])
    elif damage == "first bound":
        meta["shards"][0]["from"] = "com."
    elif damage == "shard keys":
        meta["shards"][0]["keys"] += 1
    else:
        del meta["shards"]
    (sharded / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexFormatError):
        ListIndex.open(sharded)


def test_an_unreadable_index_is_rebuilt_from_the_kept_downloads(tmp_path: Path) -> None:
    """A live index this filterd cannot read (another format) is replaced by the seed
    lists at the daemon's start, and the next update rebuilds from the kept downloads
    though no source changed (the seed index lacks them)."""
    from filterd.lists.fetch import Fetched
    from filterd.lists.seed import ensure_index
    from filterd.lists.sources import Source
    from filterd.lists.updater import NOT_MODIFIED, UPDATED, Updater

    served: list[bytes | None] = [b"casino-example.com\nwww.bet-example.vn\n"]

    def fetcher(url: str, **kw: object) -> Fetched:
        return Fetched(served[0], etag="e1")

    source = Source("hosts", "http://lists.invalid/h.txt", "domains", "gambling", "test")
    up = Updater(tmp_path, [source], seed_dir=None, fetcher=fetcher)
    assert up.update().outcomes[0].status == UPDATED
    old = (up.dir / "current").resolve()
    meta = json.loads((old / "meta.json").read_text())
    meta["format"] = 3
    (old / "meta.json").write_text(json.dumps(meta))
    seeded = ensure_index(up.dir)                      # what the daemon does at start
    assert "hosts" not in seeded.sources
    served[0] = None                                   # 304: nothing changed upstream
    report = up.update()
    assert report.outcomes[0].status == NOT_MODIFIED and report.compiled
    assert ListIndex.open(up.dir / "current").lookup("casino-example.com")[0].sources == (
        "hosts",)
    assert not up.update().compiled                    # and then no more than needed


def test_lists_lookup_and_status_read_a_sharded_index(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from filterd.cli import main
    from filterd.lists.index import swap_current

    monkeypatch.chdir(tmp_path)   # embedded defaults: data under ./var
    monkeypatch.setattr(index_mod, "SHARD_KEYS", 4)
    lists = tmp_path / "var" / "lists"
    names = tuple(f"n{i}.d{i % 5}.com" for i in range(30))
    swap_current(lists, compile_index([src("ut1-adult", "adult", subtree=(*names, "vn"))], lists))
    r = CliRunner().invoke(main, ["lists", "lookup", "WWW.N7.D2.com."])
    assert r.exit_code == 0, r.output
    assert "n7.d2.com (domain and subdomains): adult [ut1-adult]" in r.output
    r = CliRunner().invoke(main, ["lists", "lookup", "a.b.vn"])
    assert r.exit_code == 0 and "vn (domain and subdomains): adult" in r.output
    r = CliRunner().invoke(main, ["lists", "status"])
    assert r.exit_code == 0, r.output
    assert "31 domains" in r.output and "shards" in r.output
    r = CliRunner().invoke(main, ["lists", "status", "--json"])
    assert json.loads(r.output)["index"]["shards"] >= 3
