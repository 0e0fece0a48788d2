"""Helpers shared by the line-based parsers."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator

from filterd.lists.normalize import IP, NAME, classify


def text_lines(data: bytes) -> Iterator[str]:
    """Decode as UTF-8 (a byte order mark and bad bytes tolerated: bad names get rejected).

    Lines come one at a time (line ends stripped) rather than as one big list: a UT1
    adult list has millions of lines and only the kept names should stay in memory.
    """
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    for line in io.StringIO(text, newline=None):
        yield line.rstrip("\r\n")


class Collector:
    """Sorts classified entries into names / IPs and counts rejects, deduplicating names."""

    def __init__(self) -> None:
        self.names: dict[str, None] = {}
        self.ips: dict[str, None] = {}
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
