"""Helpers shared by the line-based parsers."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from filterd.lists.model import ParseResult
from filterd.lists.normalize import IP, NAME, classify
from filterd.lists.spool import URL_TAG, KeySpool, SpooledResult, name_key


class Window:
    """`buf[start:end]` without the copy: a member of a tarball unpacked in memory (UT1's
    adult `domains` is ~90 MB; a copy beside the tarball was the list compile's peak)."""

    __slots__ = ("buf", "end", "start")

    def __init__(self, buf: bytes, start: int, end: int) -> None:
        self.buf, self.start, self.end = buf, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __bytes__(self) -> bytes:
        return self.buf[self.start:self.end]


def _raw_lines(data: bytes | Window) -> Iterator[bytes]:
    if not isinstance(data, Window):
        lines = io.BytesIO(data)   # shares `data`'s buffer: no copy
        if data[:3] == b"\xef\xbb\xbf":
            lines.seek(3)
        yield from lines
        return
    f = io.BytesIO(data.buf)       # the whole buffer, shared; read from start to end only
    end = data.end
    f.seek(data.start + 3 if data.buf[data.start:data.start + 3] == b"\xef\xbb\xbf"
           and len(data) >= 3 else data.start)
    readline, tell = f.readline, f.tell
    while (rest := end - tell()) > 0:
        yield readline(rest)


def text_lines(data: bytes | Window) -> Iterator[str]:
    """Decode as UTF-8 (a byte order mark and bad bytes tolerated: bad names get rejected).

    Lines come one at a time, line ends (`\\n`, `\\r\\n`, a lone `\\r`) stripped, each
    decoded on its own: a UT1 adult list has millions of lines, and decoding the whole
    download at once (let alone a StringIO over it, four bytes a character) would hold
    several copies of it. A line end cannot fall inside a UTF-8 sequence, so this reads
    exactly what decoding the whole text would. `data` may be a `Window` into a bigger
    buffer (a tar member), read in place.
    """
    for raw in _raw_lines(data):
        if raw[-1:] == b"\n":
            raw = raw[:-1]
        if raw[-1:] == b"\r":
            raw = raw[:-1]
        if b"\r" in raw:
            for part in raw.split(b"\r"):
                yield part.decode("utf-8", errors="replace")
        else:
            yield raw.decode("utf-8", errors="replace")


class Collector:
    """Sorts classified entries into names / IPs and counts rejects, deduplicating names.

    `exact`: the names match the host only (else the domain and its subdomains). UT1
    tarballs add URL prefixes and expressions. `result()` gives the ParseResult.
    """

    def __init__(self, *, exact: bool = False) -> None:
        self.exact = exact
        self.names: dict[str, None] = {}
        self.ips: dict[str, None] = {}
        self.urls: dict[str, None] = {}
        self.expressions: list[str] = []
        self.rejects: Counter[str] = Counter()

    def add(self, raw: str) -> None:
        kind, value = classify(raw)
        if kind == NAME:
            self.names[value] = None
        elif kind == IP:
            self.ips[value] = None
        else:
            self.rejects[value] += 1

    def reject(self, reason: str) -> None:
        self.rejects[reason] += 1

    def add_url(self, entry: str) -> None:
        self.urls[entry] = None

    def add_expression(self, pattern: str) -> None:
        self.expressions.append(pattern)

    def result(self, usage: str = "black") -> ParseResult:
        names = tuple(self.names)
        return ParseResult(subtree=() if self.exact else names, exact=names if self.exact else (),
                           ips=tuple(self.ips), urls=tuple(self.urls),
                           expressions=tuple(self.expressions), rejects=self.rejects,
                           usage=usage)


class SpoolCollector(Collector):
    """The same, but every entry goes straight into a KeySpool as its trie key (bytes):
    no name is kept as a str, and duplicates go when the spool sorts. `result()` gives a
    SpooledResult (counts, rejects, the sorted keys) for the compiler."""

    def __init__(self, directory: str | Path, *, exact: bool = False) -> None:
        super().__init__(exact=exact)
        self.spool = KeySpool(directory)
        self._mark = b".=\n" if exact else b".\n"

    def add(self, raw: str) -> None:
        kind, value = classify(raw)
        if kind == NAME:
            self.spool.add(name_key(value, self._mark))
        elif kind == IP:
            self.spool.add(b"#" + value.encode("ascii") + b"\n")
        else:
            self.rejects[value] += 1

    def add_url(self, entry: str) -> None:
        self.spool.add(URL_TAG + entry.encode("utf-8", "surrogateescape") + b"\n")

    def result(self, usage: str = "black") -> SpooledResult:  # type: ignore[override]
        return SpooledResult(self.spool.finish(), tuple(self.expressions), self.rejects, usage)


CollectorFactory = Callable[..., Collector]
