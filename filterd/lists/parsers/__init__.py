"""One parser per list format. Each takes the raw bytes of one download and returns a ParseResult.

Formats (the `format:` key of a source in blocklists/sources.yaml):
- `domains`: one name a line; the source's `match` says exact host or domain-and-subdomains.
- `hosts`: hosts-file lines (`0.0.0.0 name ...`); exact hosts.
- `adblock`: `||domain^` rules (domain and subdomains); everything else is counted and skipped.
- `ut1`: a UT1 category tarball (`<cat>/domains`, split `domains.N`, `urls`, `expressions`,
  `usage`).
"""

from __future__ import annotations

from collections.abc import Callable

from filterd.errors import ListError
from filterd.lists.model import ParseResult
from filterd.lists.parsers import adblock, domains, hosts, ut1

Parser = Callable[..., ParseResult]

FORMATS: dict[str, Parser] = {
    "domains": domains.parse,
    "hosts": hosts.parse,
    "adblock": adblock.parse,
    "ut1": ut1.parse,
}


def parse(fmt: str, data: bytes, *, exact: bool = False, category: str | None = None,
          source: str | None = None) -> ParseResult:
    """Parse `data` in format `fmt`. `exact` only matters for plain domain lists."""
    try:
        parser = FORMATS[fmt]
    except KeyError:
        raise ListError(f"unknown list format {fmt!r} (known: {', '.join(FORMATS)})",
                        source=source) from None
    if fmt == "domains":
        return parser(data, exact=exact)
    if fmt == "ut1":
        return parser(data, category=category, source=source)
    return parser(data)
