"""The compiled list index: every listed name with its categories, on disk, memory-mapped.

Layout of one index directory (written whole to a temp dir, then renamed):

- `names.marisa`: a marisa trie of keys. A name is stored reversed by label, so
  every parent domain of a query is a prefix of the query's key and one
  `prefixes()` call finds them all:
    `com.example.`   example.com and every subdomain (subtree entry)
    `com.example.=`  the host example.com only (exact entry)
    `#192.0.2.1`     a bare IPv4 entry (for the proxy)
- `names.values`: for every trie key id, an index (uint16, or uint32 when needed)
  into the table of distinct (block categories, allow categories, sources) tuples
  held in `meta.json`. About 10-12 bytes per name in total, shared by every worker
  process through mmap.
- `names-<i>.marisa` + `names-<i>.values` (i = 1..n, format 2; only for lists of more
  than `SHARD_KEYS` keys): the name keys split into shards by range, so the compile
  builds (and frees) one marisa trie of at most about `SHARD_KEYS` keys at a time
  (marisa's builder takes ~110 bytes a key: issue 19, a 1 GB Pi). Then `names.marisa`
  holds only the one-label keys (`vn.`, `com.=`) and the IPs, and shard i every key
  from `meta["shards"][i-1]["from"]` (a key's first two labels, e.g. `com.example.`)
  up to the next shard's. Every parent of a name with two labels or more shares the
  name's first two reversed labels, so one walk of one shard (found by bisecting the
  query key among the bounds) plus, when the name's last label is a one-label key's
  (`meta["top_labels"]`), one walk of `names.marisa` find exactly what one walk of a
  single trie of all keys finds (see `_NameSink` and `ListIndex.lookup`).
- `urls.marisa` + `urls.values`: UT1 `urls` entries (`host/path` prefixes).
- `meta.json`: magic, format, version, sources, the tuple table, URL expressions,
  the shards, and the size of every binary file (checked on open). An index of
  another format is refused (`IndexFormatError`), never read as this one.

`<data_dir>/lists/current` is a symlink to the live index directory, replaced
atomically with os.replace so readers see the old index or the new one, never half.
"""

from __future__ import annotations

import array
import bisect
import hashlib
import heapq
import itertools
import json
import mmap
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

import marisa_trie

from filterd.errors import IndexFormatError, ListError
from filterd.lists.model import ListHit, ParseResult, SourceInfo
from filterd.lists.normalize import NAME, classify
from filterd.lists.spool import URL_TAG, KeySpool, SortedKeys, SpooledResult, name_key, open_lines
from filterd.state.atomic import fsync_dir

MAGIC = "filterd-list-index"
FORMAT = 2          # 2: the name trie may be split into shards (names-<i>.marisa)
META = "meta.json"
NAMES = "names.marisa"
NAME_VALUES = "names.values"
URLS = "urls.marisa"
URL_VALUES = "urls.values"

# At most about this many keys in one name trie: the compile's peak is marisa's builder
# for one trie (~110 bytes a key), so 1 M keys is ~110 MiB whatever the list's size.
# A list of up to this many keys (the real lists: ~580 k) keeps one trie, as before.
SHARD_KEYS = 1_000_000


def shard_files(i: int) -> tuple[str, str]:
    """The trie and value files of name shard `i` (1..n)."""
    return f"names-{i}.marisa", f"names-{i}.values"

SUBTREE_MARK = "."
EXACT_MARK = ".="
IP_MARK = "#"

_Combo = tuple[frozenset[str], frozenset[str], tuple[str, ...]]  # block cats, allow cats, sources
_tuple_new = tuple.__new__


@dataclass(frozen=True)
class CompileSource:
    """One source's parsed data, as `compile_index` takes it: a ParseResult (small
    lists, tests) or a SpooledResult (`parsers.spool`: big lists, the updater)."""

    info: SourceInfo
    result: ParseResult | SpooledResult


def reverse_key(name: str) -> str:
    """`www.example.com` -> `com.example.www` (parents become prefixes)."""
    labels = name.split(".")
    labels.reverse()
    return ".".join(labels)


class _IpTable(Mapping[str, ListHit]):
    """Bare IPv4 entries, read from the same trie (keys `#<ip>`)."""

    def __init__(self, index: ListIndex) -> None:
        self._index = index

    def __getitem__(self, ip: str) -> ListHit:
        kid = self._index._trie.get(IP_MARK + ip)
        if kid is None:
            raise KeyError(ip)
        return self._index._hit(ip, kid, exact=True)

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, str) and (IP_MARK + ip) in self._index._trie

    def __iter__(self) -> Iterator[str]:
        return (k[1:] for k in self._index._trie.iterkeys(IP_MARK))

    def __len__(self) -> int:
        return int(self._index._meta.get("counts", {}).get("ips", 0))


class ListIndex:
    """A read-only compiled index. `open()` maps it from disk; `MemoryIndex` builds one in RAM."""

    def __init__(self, trie: marisa_trie.Trie, values: memoryview, url_trie: marisa_trie.Trie,
                 url_values: memoryview, meta: Mapping[str, object],
                 path: Path | None = None, keepalive: tuple[object, ...] = (),
                 shards: tuple[tuple[marisa_trie.Trie, memoryview], ...] = ()) -> None:
        self._trie = trie          # the whole name trie, or (sharded) one-label keys and IPs
        self._prefixes_ids = trie.iter_prefixes_with_ids
        self._values = values
        self._shard_tries = tuple(t for t, _ in shards)
        self._shards = tuple((t.iter_prefixes_with_ids, v) for t, v in shards)
        self._bounds: tuple[str, ...] = tuple(
            str(s["from"]) for s in meta.get("shards", ()))  # type: ignore[union-attr,index]
        self._top_labels = frozenset(meta.get("top_labels", ()))  # type: ignore[arg-type]
        self._url_trie = url_trie
        self._url_values = url_values
        self._meta = meta
        self.path = path
        self._keepalive = keepalive  # mmaps backing the memoryviews
        table = meta["table"]
        self._table: tuple[tuple[frozenset[str], tuple[str, ...], frozenset[str]], ...] = tuple(
            (frozenset(b), tuple(s), frozenset(a)) for b, a, s in table)  # type: ignore[union-attr]
        self.version: str = str(meta["version"])
        self.sources: Mapping[str, SourceInfo] = MappingProxyType({
            d["name"]: SourceInfo.from_dict(d) for d in meta["sources"]})  # type: ignore[union-attr,index]
        self.ips: Mapping[str, ListHit] = _IpTable(self)
        self._expressions: tuple[tuple[re.Pattern[str], int], ...] = tuple(
            (re.compile(e["pattern"]), int(e["combo"])) for e in meta.get("expressions", ()))  # type: ignore[union-attr,index]

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ListIndex:
        """Map a compiled index directory (or the `current` symlink to one). Validates it."""
        base = Path(path)
        try:
            real = base.resolve(strict=True)
            meta = json.loads((real / META).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise IndexFormatError(f"no list index at {base}") from exc
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"unreadable index metadata in {base}: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("magic") != MAGIC:
            raise IndexFormatError(f"{base} is not a filterd list index")
        if meta.get("byteorder") != sys.byteorder:
            raise IndexFormatError(f"{base}: compiled on a {meta.get('byteorder')}-endian machine")
        if meta.get("format") == 1 and "shards" not in meta:
            # Format 1 is format 2 with one trie: an upgrade keeps serving the full lists
            # it compiled, instead of the seed lists until the next nightly update.
            meta = {**meta, "format": FORMAT, "shards": [], "top_labels": []}
        if meta.get("format") != FORMAT:
            raise IndexFormatError(f"{base}: index format {meta.get('format')!r}, "
                                   f"this filterd reads formats 1 and {FORMAT}")
        try:
            sizes = meta["files"]
            shards = _check_shards(meta)
            for fname in _index_files(len(shards)):
                actual = (real / fname).stat().st_size
                if actual != sizes[fname]:
                    raise IndexFormatError(
                        f"{base}/{fname}: {actual} bytes, expected {sizes[fname]}")
            typecode = meta["value_type"]
            keepalive = []
            tries = []
            for tname, vname in ((NAMES, NAME_VALUES), (URLS, URL_VALUES),
                                 *(shard_files(i) for i in range(1, len(shards) + 1))):
                trie = marisa_trie.Trie().mmap(str(real / tname))
                values, vmap = _map_values(real / vname, typecode)
                if len(values) != len(trie):
                    raise IndexFormatError(f"{base}/{vname}: values do not match the trie")
                keepalive.append(vmap)
                tries.append((trie, values))
            for shard, (trie, _) in zip(shards, tries[2:], strict=True):
                if len(trie) != shard["keys"]:
                    raise IndexFormatError(f"{base}: shard from {shard['from']!r} has "
                                           f"{len(trie)} keys, expected {shard['keys']}")
            keys = sum(len(t) for i, (t, _) in enumerate(tries) if i != 1)
            if keys != meta["counts"]["keys"]:
                raise IndexFormatError(
                    f"{base}: {keys} keys, expected {meta['counts']['keys']}")
            (trie, values), (url_trie, url_values) = tries[:2]
            index = cls(trie, values, url_trie, url_values, meta, path=real,
                        keepalive=tuple(keepalive), shards=tuple(tries[2:]))
        except IndexFormatError:
            raise
        except (OSError, KeyError, TypeError, ValueError, RuntimeError, re.error) as exc:
            raise IndexFormatError(
                f"{base}: damaged list index ({type(exc).__name__}: {exc})") from exc
        return index

    # -- queries -------------------------------------------------------------------

    def lookup(self, name: str) -> tuple[ListHit, ...]:
        """Every entry matching `name` or a parent domain, most specific first.

        Subtree entries match the name and all its subdomains; exact entries only
        the name itself. An exact and a subtree entry for the same name are both
        returned (exact first).
        """
        # The hot path of every DNS query: one marisa walk over the reversed name finds
        # every listed parent together with its key id (no second lookup per hit), and
        # hits are built with tuple.__new__ (a NamedTuple's __new__ is a Python call).
        if name[-1:] == ".":
            name = name[:-1]
        name = name.lower()
        labels = name.split(".")
        labels.reverse()
        query = ".".join(labels) + EXACT_MARK
        table, new = self._table, _tuple_new
        hits = []
        end = len(name) + 1
        if self._bounds:
            # Sharded: a one-label key (`vn.`) is a prefix of the query only if its label
            # is the query's first; it is the shortest, so it comes first as in one trie.
            if labels[0] in self._top_labels:
                self._walk(self._prefixes_ids, self._values, query, name, hits)
            # Every other key that is a prefix of the query starts with the query's first
            # two labels (`com.example.`), and all keys starting so are in one shard: the
            # one whose bound is the last not above the query (bounds are such prefixes).
            prefixes_ids, values = self._shards[bisect.bisect_right(self._bounds, query) - 1]
        else:
            prefixes_ids, values = self._prefixes_ids, self._values
        for key, kid in prefixes_ids(query):
            block, sources, allow = table[values[kid]]
            if key[-1] == "=":
                hits.append(new(ListHit, (name, block, sources, True, allow)))
            else:  # a subtree key is the reversed domain plus ".": same length as ".domain"
                hits.append(new(ListHit, (name[end - len(key):], block, sources, False, allow)))
        if not hits:
            return ()
        hits.reverse()  # marisa yields the shortest prefix (the widest domain) first
        return tuple(hits)

    def _walk(self, prefixes_ids: object, values: memoryview, query: str, name: str,
              hits: list[ListHit]) -> None:
        """`lookup`'s loop over one trie (the one-label keys of a sharded index)."""
        table, new = self._table, _tuple_new
        end = len(name) + 1
        for key, kid in prefixes_ids(query):  # type: ignore[operator]
            block, sources, allow = table[values[kid]]
            if key[-1] == "=":
                hits.append(new(ListHit, (name, block, sources, True, allow)))
            else:
                hits.append(new(ListHit, (name[end - len(key):], block, sources, False, allow)))

    def url_match(self, url: str) -> ListHit | None:
        """The most specific UT1 `urls` prefix or `expressions` pattern matching `url`."""
        try:
            parts = urlsplit(url if "://" in url else "http://" + url)
            host = (parts.hostname or "").rstrip(".")
        except ValueError:
            return None
        rest = parts.path or "/"
        if parts.query:
            rest += "?" + parts.query
        if host and len(self._url_trie):
            labels = host.split(".")
            if labels[0] == "www":  # squidGuard matches urls entries without the www. prefix
                labels = labels[1:]
            for i in range(len(labels) - 1):
                h = ".".join(labels[i:])
                found = [k for k in self._url_trie.prefixes(h + rest) if len(k) > len(h)]
                if found:
                    best = max(found, key=len)
                    return self._url_hit(best, self._url_values[self._url_trie[best]])
        if self._expressions:
            target = url.lower()
            for pattern, combo in self._expressions:
                if pattern.search(target):
                    return self._url_hit(pattern.pattern, combo)
        return None

    def __len__(self) -> int:
        """Number of names (subtree and exact entries, not IPs or URLs)."""
        counts = self._meta["counts"]
        return int(counts["subtree"]) + int(counts["exact"])  # type: ignore[index]

    @property
    def counts(self) -> Mapping[str, int]:
        return MappingProxyType(dict(self._meta["counts"]))  # type: ignore[arg-type]

    @property
    def shards(self) -> int:
        """Number of name tries besides `names.marisa` (0: one trie holds every name)."""
        return len(self._shards)

    def entries(self) -> Iterator[tuple[str, bool, ListHit]]:
        """Every (name, exact, hit) (for tests and `lists status`; slow on big indexes)."""
        for trie, values in ((self._trie, self._values),
                             *zip(self._shard_tries, (v for _, v in self._shards), strict=True)):
            for key, kid in trie.iteritems():
                if key.startswith(IP_MARK):
                    continue
                exact = key.endswith("=")
                domain = reverse_key(key[:-2] if exact else key[:-1])
                block, sources, allow = self._table[values[kid]]
                yield domain, exact, ListHit(domain, block, sources, exact, allow)

    def _hit(self, domain: str, kid: int, *, exact: bool) -> ListHit:
        block, sources, allow = self._table[self._values[kid]]   # names.marisa (IPs)
        return ListHit(domain, block, sources, exact, allow)

    def _url_hit(self, entry: str, combo: int) -> ListHit:
        block, sources, allow = self._table[combo]
        return ListHit(entry, block, sources, False, allow)


class MemoryIndex(ListIndex):
    """An index built in RAM, for tests: `MemoryIndex.from_entries({"example.com": {"adult"}})`."""

    @classmethod
    def from_entries(cls, entries: Mapping[str, Iterable[str]], *, exact: Iterable[str] = (),
                     urls: Mapping[str, Iterable[str]] | None = None,
                     ips: Mapping[str, Iterable[str]] | None = None,
                     allow: Mapping[str, Iterable[str]] | None = None,
                     version: str = "memory") -> MemoryIndex:
        """Names -> categories (domain and subdomains; names in `exact` match the host only).

        Names are normalised like list entries (`Bücher.DE.` -> `xn--bcher-kva.de`);
        an invalid one is a ListError.

        Each category becomes a source `memory-<category>`; `allow` entries come from
        white (allow) lists. Compiled like any index (in a temporary directory, then
        read into memory).
        """
        def norm(name: str) -> str:
            kind, value = classify(name)
            if kind != NAME:
                raise ListError(f"not a valid list entry: {name!r} ({value})")
            return value

        exact_names = {norm(n) for n in exact}
        per_cat: dict[tuple[str, str], dict[str, list[str]]] = {}

        def add(usage: str, kind: str, name: str, cats: Iterable[str]) -> None:
            for cat in cats:
                per_cat.setdefault((cat, usage), {}).setdefault(kind, []).append(name)

        for raw, cats in entries.items():
            name = norm(raw)
            add("black", "exact" if name in exact_names else "subtree", name, cats)
        for raw, cats in (allow or {}).items():
            name = norm(raw)
            add("white", "exact" if name in exact_names else "subtree", name, cats)
        for url, cats in (urls or {}).items():
            add("black", "urls", url, cats)
        for ip, cats in (ips or {}).items():
            add("black", "ips", ip, cats)
        sources = []
        for (cat, usage), kinds in sorted(per_cat.items()):
            name = f"memory-{cat}" if usage == "black" else f"memory-allow-{cat}"
            result = ParseResult(**{k: tuple(v) for k, v in kinds.items()}, usage=usage)
            sources.append(CompileSource(SourceInfo(name, cat, version, result.count,
                                                    usage=usage), result))
        with tempfile.TemporaryDirectory(prefix="filterd-index-") as d:
            built = Path(d)
            meta = _build(sources, built, built / "work", version=version)
            typecode = str(meta["value_type"])
            tries = []
            for tname, vname in ((NAMES, NAME_VALUES), (URLS, URL_VALUES),
                                 *(shard_files(i) for i in range(1, len(meta["shards"]) + 1))):  # type: ignore[arg-type]
                trie = marisa_trie.Trie().frombytes((built / tname).read_bytes())
                values = array.array(typecode)
                values.frombytes((built / vname).read_bytes())
                tries.append((trie, memoryview(values)))
        (trie, values), (url_trie, url_values) = tries[:2]
        return cls(trie, values, url_trie, url_values, meta, shards=tuple(tries[2:]))


# -- compiling -------------------------------------------------------------------------


def _build(sources: Iterable[CompileSource], out: Path, work: Path, *,
           version: str | None = None, created: float | None = None) -> dict[str, object]:
    """Write the index's binary files into `out`; return its metadata (sizes included).

    Memory stays small whatever the lists' size (issue 19): every source's keys arrive
    as a sorted run of distinct keys on disk (a SpooledResult from the updater, or
    spooled here from a ParseResult), one `heapq.merge` over all of them gives each key
    once with the sources holding it, and that stream is written to `work` as the
    merged keys (one a line) beside their category-set ids. marisa then builds the trie
    from that file read line by line, and a last pass fills the value array by key id.
    No pass holds more than a chunk of keys; the floor is marisa's own builder.
    """
    combos: list[_Combo] = []
    combo_ids: dict[_Combo, int] = {}
    step: dict[tuple[int, int], int] = {}   # (old combo, source number) -> merged combo
    empty: _Combo = (frozenset(), frozenset(), ())
    srcs: list[SourceInfo] = []
    first_for: list[int] = []               # combo for a key seen only in source i

    def intern(c: _Combo) -> int:
        cid = combo_ids.get(c)
        if cid is None:
            cid = combo_ids[c] = len(combos)
            combos.append(c)
        return cid

    def add_source(c: _Combo, info: SourceInfo) -> _Combo:
        block, allow, names = c
        if info.usage == "white":
            allow = allow | {info.category}
        else:
            block = block | {info.category}
        return block, allow, names if info.name in names else (*names, info.name)

    def merge(old: int, number: int) -> int:
        m = step.get((old, number))
        if m is None:
            m = step[(old, number)] = intern(add_source(combos[old], srcs[number]))
        return m

    work.mkdir(parents=True, exist_ok=True)
    inputs: list[SortedKeys] = []
    expressions: dict[str, int] = {}
    digest = hashlib.sha256()
    for number, src in enumerate(sources):
        info, res = src.info, src.result
        if info.name in {s.name for s in srcs}:
            raise ListError("source listed twice", source=info.name)
        srcs.append(info)
        digest.update(f"{info.name}\0{info.version}\0{info.category}\0{info.usage}\n".encode())
        first = intern(add_source(empty, info))
        first_for.append(first)
        if isinstance(res, SpooledResult):
            inputs.append(res.keys)
        else:
            inputs.append(_spool_result(res, work))
        for pattern in res.expressions:
            old = expressions.get(pattern)
            expressions[pattern] = first if old is None else merge(old, number)
        if not version:
            digest.update(str(res.count).encode())
        del src, res   # a parsed list goes before the next one is parsed (peak memory)

    counts = {"subtree": 0, "exact": 0, "ips": 0, "urls": 0, "expressions": len(expressions)}
    url_keys, url_combos = work / "urls.keys", work / "urls.combos"
    subtree = exact = ips = urls = 0
    # The shard count from the keys' upper bound (every source's distinct keys, before the
    # merge removes the keys several sources share): no pass over the keys beforehand.
    upper = sum(keys.count for keys in inputs)
    shards = -(-upper // SHARD_KEYS)
    sink = _NameSink(work, -(-upper // shards) if shards > 1 else None)
    with sink, open(url_keys, "wb", buffering=1 << 20) as uf, \
            _Uint32Writer(url_combos) as ucw:
        nadd, uwrite, uput = sink.add, uf.write, ucw.append
        streams = [zip(keys, itertools.repeat(n)) for n, keys in enumerate(inputs)]
        prev = b""
        combo = -1
        # Each source's run holds a key once, and ties come out in source order, so a
        # key's sources arrive in order and fold into its combo as they did key by key.
        for line, n in heapq.merge(*streams):
            if line == prev:
                combo = merge(combo, n)
                continue
            if combo >= 0:
                if prev[0] == 1:     # URL_TAG
                    uwrite(prev[1:])
                    uput(combo)
                    urls += 1
                else:
                    nadd(prev, combo)
                    if prev[0] == 35:        # "#": a bare IPv4 entry
                        ips += 1
                    elif prev[-2] == 61:     # ".=": an exact entry
                        exact += 1
                    else:
                        subtree += 1
            prev, combo = line, first_for[n]
        if combo >= 0:
            if prev[0] == 1:
                uwrite(prev[1:])
                uput(combo)
                urls += 1
            else:
                nadd(prev, combo)
                if prev[0] == 35:
                    ips += 1
                elif prev[-2] == 61:
                    exact += 1
                else:
                    subtree += 1
        del streams
    for keys in inputs:
        keys.discard()
    del inputs
    counts.update(subtree=subtree, exact=exact, ips=ips, urls=urls)

    created = time.time() if created is None else created
    if not version:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
        version = f"{stamp}-{digest.hexdigest()[:8]}"
    typecode = "H" if len(combos) <= 0xFFFF else "I"
    itemsize = array.array(typecode).itemsize
    names_count = subtree + exact + ips
    # One trie at a time, each freed before the next is built: the peak is the biggest.
    levels = []
    for part, (tname, vname) in zip(sink.parts, ((NAMES, NAME_VALUES), *map(
            shard_files, range(1, len(sink.parts)))), strict=True):
        trie, num_tries = _name_trie(part.keys, part.count, itemsize, out / tname)
        _fill_values(trie, part.keys, part.combos, typecode, out / vname)
        del trie
        part.keys.unlink()
        part.combos.unlink()
        levels.append(num_tries)
    shard_meta = [{"from": b, "keys": part.count, "num_tries": n}
                  for b, part, n in zip(sink.bounds, sink.parts[1:], levels[1:], strict=True)]
    url_trie = marisa_trie.Trie(_read_keys(url_keys))
    url_trie.save(str(out / URLS))
    _fill_values(url_trie, url_keys, url_combos, typecode, out / URL_VALUES)
    del url_trie
    good_expressions = []
    for pattern, combo in expressions.items():
        try:
            re.compile(pattern)
        except re.error:
            continue  # UT1 expressions are POSIX EREs; the rare one Python rejects is skipped
        good_expressions.append({"pattern": pattern, "combo": combo})
    counts["keys"] = names_count
    return {
        "magic": MAGIC, "format": FORMAT, "version": version, "created": created,
        "value_type": typecode, "byteorder": sys.byteorder, "counts": counts,
        "num_tries": levels[0],
        "shards": shard_meta,
        "top_labels": sorted(sink.top_labels),
        "sources": [s.to_dict() for s in srcs],
        "table": [[sorted(b), sorted(a), list(s)] for b, a, s in combos],
        "expressions": good_expressions,
        "files": {f: (out / f).stat().st_size for f in _index_files(len(shard_meta))},
    }


def _index_files(shards: int) -> tuple[str, ...]:
    return (NAMES, NAME_VALUES, URLS, URL_VALUES,
            *itertools.chain.from_iterable(map(shard_files, range(1, shards + 1))))


def _check_shards(meta: Mapping[str, object]) -> list[Mapping[str, object]]:
    """The shard list of a manifest, checked: bounds strictly increasing, the first "",
    one-label keys' labels given (a damaged list would answer wrong, not fail)."""
    shards = meta["shards"]
    labels = meta["top_labels"]
    if not isinstance(shards, list) or not isinstance(labels, list) or not all(
            isinstance(s, dict) and isinstance(s.get("from"), str)
            and isinstance(s.get("keys"), int) for s in shards):
        raise ValueError("malformed shard list")
    bounds = [s["from"] for s in shards]
    if bounds and (bounds[0] != "" or any(a >= b for a, b in itertools.pairwise(bounds))):
        raise ValueError("shard bounds out of order")
    return shards


@dataclass
class _KeyPart:
    """One name trie's merged keys (one a line) and their category-set ids, on disk."""

    keys: Path
    combos: Path
    count: int = 0


class _NameSink:
    """Where the merge puts the name keys (sorted, distinct): one file per name trie.

    Unsharded (`target` None): every key in part 0 (`names.marisa`). Sharded: part 0 gets
    the IPs (`#...`) and the one-label keys (`vn.`, `vn.=`); the other keys go to the
    current shard, and a new shard starts at the first key whose first two labels
    (`com.example.`, its group) differ from the previous key's once the current shard
    holds `target` keys. Why one walk per shard finds the same as one walk of a single
    trie (`ListIndex.lookup`): a key with two labels or more is a prefix of a query key
    only if it starts with the query's group g; the keys of one group are contiguous
    in sorted order, so never split; and bounds are groups, two distinct groups differ
    within both (each has exactly two dots, at its end), so for every bound b,
    b <= query iff b <= g: bisecting the query finds g's shard. A one-label key or an
    IP is a prefix of a query only if its first label is the query's (`top_labels`).
    """

    def __init__(self, work: Path, target: int | None) -> None:
        self.work = work
        self.target = target
        self.parts: list[_KeyPart] = []
        self.bounds: list[str] = []
        self.top_labels: set[str] = set()
        self._files: list[tuple[object, _Uint32Writer]] = []
        self._group = b""
        self._top = self._open()
        self._cur: tuple[_KeyPart, object, _Uint32Writer] | None = None
        self.add = self._add_top if target is None else self._add_sharded

    def _open(self) -> tuple[_KeyPart, object, _Uint32Writer]:
        n = len(self.parts)
        part = _KeyPart(self.work / f"names-{n}.keys", self.work / f"names-{n}.combos")
        self.parts.append(part)
        f = open(part.keys, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in __exit__
        w = _Uint32Writer(part.combos)
        self._files.append((f, w))
        return part, f.write, w.append

    def _add_top(self, key: bytes, combo: int) -> None:
        part, write, put = self._top
        write(key)
        put(combo)
        part.count += 1

    def _add_sharded(self, key: bytes, combo: int) -> None:
        dot = key.find(46)                       # "."
        second = key.find(46, dot + 1)
        if key[0] == 35 or second < 0:           # an IP, or a one-label key
            self.top_labels.add(key[:dot].decode("ascii", "surrogateescape"))
            self._add_top(key, combo)
            return
        group = key[:second + 1]
        cur = self._cur
        if cur is None or (cur[0].count >= self.target and group != self._group):  # type: ignore[operator]
            self.bounds.append(group.decode("ascii", "surrogateescape") if cur else "")
            cur = self._cur = self._open()
        self._group = group
        part, write, put = cur
        write(key)
        put(combo)  # type: ignore[operator]
        part.count += 1

    def __enter__(self) -> _NameSink:
        return self

    def __exit__(self, *exc: object) -> None:
        for f, w in self._files:
            f.close()  # type: ignore[attr-defined]
            w.__exit__()
        if not self.bounds:   # sharded but no key of two labels: one trie, as unsharded
            self.top_labels = set()


def _spool_result(res: ParseResult, work: Path) -> SortedKeys:
    """A ParseResult's entries as one sorted run of distinct keys (small lists, tests)."""
    spool = KeySpool(work)
    add = spool.add
    for n in res.subtree:
        add(name_key(n, b".\n"))
    for n in res.exact:
        add(name_key(n, b".=\n"))
    for ip in res.ips:
        add(b"#" + ip.encode("ascii") + b"\n")
    for url in res.urls:
        add(URL_TAG + url.encode("utf-8", "surrogateescape") + b"\n")
    return spool.finish()


class _Uint32Writer:
    """Category-set ids, in key order, to a file (kept out of memory while marisa builds)."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 - closed in __exit__
        self._buf = array.array("I")

    def append(self, value: int) -> None:
        buf = self._buf
        buf.append(value)
        if len(buf) >= 65536:
            buf.tofile(self._f)
            del buf[:]

    def __enter__(self) -> _Uint32Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._buf.tofile(self._f)
        self._f.close()


def _read_uint32(path: Path) -> Iterator[int]:
    with open(path, "rb") as f:
        while True:
            chunk = array.array("I")
            try:
                chunk.fromfile(f, 65536)
            except EOFError:
                yield from chunk
                return
            yield from chunk


def _read_keys(path: Path) -> Iterator[str]:
    for line in open_lines(path):
        yield line[:-1].decode("utf-8")


def _fill_values(trie: marisa_trie.Trie, keys: Path, combos: Path, typecode: str,
                 out: Path) -> None:
    """values[key id] = combo of the key, key by key from the merged files."""
    values = array.array(typecode, bytes(array.array(typecode).itemsize * len(trie)))
    for key, combo in zip(_read_keys(keys), _read_uint32(combos), strict=True):
        values[trie[key]] = combo
    with open(out, "wb") as f:
        values.tofile(f)


# Resident budget per name (trie + value). Fewer marisa levels answer prefix searches
# faster but take more room: one level is about twice as fast as the default three and
# ~40 % larger. Real list names fit one level (about 8 B + 2 B); less compressible names
# get two or three.
BYTES_PER_NAME = 16


def _name_trie(keys: Path, count: int, value_size: int,
               out: Path) -> tuple[marisa_trie.Trie, int]:
    """The name trie, built from the merged key file and saved to `out`."""
    budget = (BYTES_PER_NAME - value_size) * count
    for levels in (1, 2):
        trie = marisa_trie.Trie(_read_keys(keys), num_tries=levels)
        trie.save(str(out))
        if not count or out.stat().st_size <= budget:
            return trie, levels
        del trie
    trie = marisa_trie.Trie(_read_keys(keys))
    trie.save(str(out))
    return trie, marisa_trie.DEFAULT_NUM_TRIES


def compile_index(sources: Iterable[CompileSource], out_dir: str | os.PathLike[str], *,
                  version: str | None = None) -> Path:
    """Compile `sources` into a new index directory inside `out_dir`; return its path.

    Written to a temporary directory first and renamed into place, so a crash leaves
    no half-written index under a real name. Use `swap_current` to make it live. The
    compiler's scratch files (merged keys) go to a directory inside the temporary one,
    on the same disk, and are removed before the rename.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=out))
    try:
        meta = _build(sources, tmp, tmp / ".work", version=version)
        shutil.rmtree(tmp / ".work")
        for fname in meta["files"]:  # type: ignore[attr-defined]
            _fsync(tmp / fname)
        _write_synced(tmp / META, json.dumps(meta, ensure_ascii=False, indent=1).encode())
        final = out / f"index-{meta['version']}"
        if final.exists():  # same content compiled again in the same second: keep one copy
            final = out / f"index-{meta['version']}-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(tmp, final)
        fsync_dir(out)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def swap_current(lists_dir: str | os.PathLike[str], index_dir: str | os.PathLike[str], *,
                 keep: int = 2) -> Path:
    """Point `<lists_dir>/current` at `index_dir` atomically; prune older index directories.

    The new index is opened (validated) first, so `current` never points at a broken one.
    The previous `keep - 1` indexes stay (a process may still map them; unlinking
    mapped files is safe on POSIX anyway).
    """
    base = Path(lists_dir)
    target = Path(index_dir)
    ListIndex.open(target)
    link = base / "current"
    tmp_link = base / f".current-{os.getpid()}-{time.monotonic_ns()}"
    os.symlink(target.name if target.parent.resolve() == base.resolve() else target.resolve(),
               tmp_link)
    os.replace(tmp_link, link)
    fsync_dir(base)
    _prune(base, target.resolve(), keep)
    return link


def open_current(lists_dir: str | os.PathLike[str]) -> ListIndex:
    """The live index of a data directory's lists (`<data_dir>/lists/current`)."""
    return ListIndex.open(Path(lists_dir) / "current")


def _prune(base: Path, live: Path, keep: int) -> None:
    olds = sorted((p for p in base.glob("index-*") if p.is_dir() and p.resolve() != live),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in olds[max(keep - 1, 0):]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in base.glob(".building-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


def _map_values(path: Path, typecode: str) -> tuple[memoryview, mmap.mmap | None]:
    if typecode not in ("H", "I"):
        raise IndexFormatError(f"{path}: unknown value type {typecode!r}")
    size = path.stat().st_size
    if size == 0:
        return memoryview(b"").cast("B").cast(typecode), None
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if size % array.array(typecode).itemsize:
        raise IndexFormatError(f"{path}: size {size} is not a multiple of the value width")
    return memoryview(mm).cast(typecode), mm


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
