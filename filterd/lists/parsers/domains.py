"""Plain domain lists: one name a line, `#` comments (hostsVN, blocklistproject, UT1 `domains`)."""

from __future__ import annotations

from filterd.lists.model import ParseResult
from filterd.lists.parsers._lines import Collector, CollectorFactory, Window, text_lines

MALFORMED = "malformed"


def parse(data: bytes, *, exact: bool = False,
          collector: CollectorFactory = Collector) -> ParseResult:
    """`exact=True`: each name matches that host only; otherwise the name and its subdomains."""
    c = collector(exact=exact)
    feed(data, c)
    return c.result()


def feed(data: bytes | Window, c: Collector) -> None:
    for line in text_lines(data):
        if "#" in line:
            line = line.split("#", 1)[0]
        line = line.strip()
        if not line:
            continue
        if " " in line or "\t" in line:
            c.reject(MALFORMED)
            continue
        c.add(line)
