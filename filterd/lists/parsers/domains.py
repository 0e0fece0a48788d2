"""Plain domain lists: one name a line, `#` comments (hostsVN, blocklistproject, UT1 `domains`)."""

from __future__ import annotations

from filterd.lists.model import ParseResult
from filterd.lists.parsers._lines import Collector, text_lines

MALFORMED = "malformed"


def parse(data: bytes, *, exact: bool = False) -> ParseResult:
    """`exact=True`: each name matches that host only; otherwise the name and its subdomains."""
    c = Collector()
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
    names = tuple(c.names)
    return ParseResult(exact=names if exact else (), subtree=() if exact else names,
                       ips=tuple(c.ips), rejects=c.rejects)
