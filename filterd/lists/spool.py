"""Sorted runs on disk: how a list of millions of names is deduplicated and merged in
little memory (issue 19: the daily update must fit a 1 GB Raspberry Pi beside the daemon).

A source's entries become trie keys as bytes (`reverse_key(name) + "."` or `".="`,
`"#" + ip`, and URL prefixes tagged with a leading `\\x01`), one per line. A
`KeySpool` sorts them in chunks of `CHUNK` keys, writes each sorted, deduplicated chunk
to a file and, at the end, merges the chunks into one sorted file of distinct keys (its
line count is the source's count). The compiler then merges every source's file in one
pass (`heapq.merge`), so no step ever holds a whole list: memory is one chunk plus the
merge's one line per file.

Lines keep their `\\n` while sorted and merged: `sorted`, the merge and the grouping
of equal keys all compare the same bytes, so the order is one total order everywhere
(marisa does not need any particular order; the merge only needs the same one).
Scratch files go to the directory given (the lists directory, on the data disk), never
to /tmp: on a Raspberry Pi /tmp may be a tmpfs, i.e. RAM.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

CHUNK = 200_000     # keys sorted in memory at a time (~14 MB of bytes objects)
SMALL = 4_096       # a source this small stays in memory (the seed lists, tests)
URL_TAG = b"\x01"   # names, exact names and IPs never start with it


def name_key(name: str, mark: bytes) -> bytes:
    """`www.example.com` -> `b"com.example.www" + mark + b"\\n"`."""
    labels = name.split(".")
    labels.reverse()
    return ".".join(labels).encode("ascii") + mark


def open_lines(path: Path) -> Iterator[bytes]:
    # A small read buffer: a merge has one of these open per run or per source.
    with open(path, "rb", buffering=1 << 16) as f:
        yield from f


@dataclass
class SortedKeys:
    """A source's distinct keys in sorted order: in memory (small) or in one file."""

    count: int
    lines: list[bytes] | None = None
    path: Path | None = None

    def __iter__(self) -> Iterator[bytes]:
        if self.lines is not None:
            return iter(self.lines)
        assert self.path is not None
        return open_lines(self.path)

    def discard(self) -> None:
        self.lines = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class KeySpool:
    """Collects one source's keys (`\\n`-terminated bytes); `finish()` sorts and dedupes."""

    _ids = itertools.count()

    def __init__(self, directory: str | os.PathLike[str], *, chunk: int | None = None) -> None:
        self.dir = Path(directory)
        self.chunk = chunk or CHUNK
        self._buf: list[bytes] = []
        self._runs: list[Path] = []
        self._stem = f"spool-{os.getpid()}-{next(self._ids)}"

    def add(self, key: bytes) -> None:
        buf = self._buf
        buf.append(key)
        if len(buf) >= self.chunk:
            self._spill()

    def extend(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self.add(key)

    def _spill(self) -> None:
        path = self.dir / f"{self._stem}.run{len(self._runs)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = sorted(set(self._buf))
        self._buf = []
        with open(path, "wb", buffering=1 << 20) as f:
            f.writelines(keys)
        self._runs.append(path)

    def finish(self) -> SortedKeys:
        """The distinct keys, sorted. The spool is empty afterwards."""
        if not self._runs and len(self._buf) <= min(SMALL, self.chunk):
            lines = sorted(set(self._buf))
            self._buf = []
            return SortedKeys(len(lines), lines=lines)
        if self._buf:
            self._spill()
        runs, self._runs = self._runs, []
        if len(runs) == 1:
            with open(runs[0], "rb") as f:
                count = sum(1 for _ in f)
            return SortedKeys(count, path=runs[0])
        out = self.dir / f"{self._stem}.sorted"
        count = 0
        with open(out, "wb", buffering=1 << 20) as f:
            write = f.write
            prev = None
            for line in heapq.merge(*(open_lines(r) for r in runs)):
                if line != prev:
                    write(line)
                    count += 1
                    prev = line
        for r in runs:
            r.unlink()
        return SortedKeys(count, path=out)

    def discard(self) -> None:
        self._buf = []
        for r in self._runs:
            r.unlink(missing_ok=True)
        self._runs = []


@dataclass
class SpooledResult:
    """What a spooled parse found (ParseResult's counts, not its tuples): the keys are in
    `keys`, sorted and distinct. `count` counts names, IPs and URLs as ParseResult does."""

    keys: SortedKeys
    expressions: tuple[str, ...] = ()
    rejects: Mapping[str, int] = field(default_factory=dict)
    usage: str = "black"

    def __post_init__(self) -> None:
        self.rejects = MappingProxyType(dict(self.rejects))

    @property
    def count(self) -> int:
        return self.keys.count

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    def discard(self) -> None:
        self.keys.discard()
