"""One parser per list format. Each takes the raw bytes of one download and returns a ParseResult.

Formats (the `format:` key of a source in blocklists/sources.yaml):
- `domains`: one name a line; the source's `match` says exact host or domain-and-subdomains.
- `hosts`: hosts-file lines (`0.0.0.0 name ...`); exact hosts.
- `adblock`: `||domain^` rules (domain and subdomains); everything else is counted and skipped.
- `ut1`: a UT1 category tarball (`<cat>/domains`, split `domains.N`, `urls`, `expressions`,
  `usage`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from filterd.errors import ListError
from filterd.lists.model import ParseResult
from filterd.lists.parsers import adblock, domains, hosts, ut1
from filterd.lists.parsers._lines import Collector, CollectorFactory, SpoolCollector
from filterd.lists.spool import SpooledResult

Parser = Callable[..., ParseResult]

FORMATS: dict[str, Parser] = {
    "domains": domains.parse,
    "hosts": hosts.parse,
    "adblock": adblock.parse,
    "ut1": ut1.parse,
}


def parse(fmt: str, data: bytes, *, exact: bool = False, category: str | None = None,
          source: str | None = None, collector: CollectorFactory = Collector) -> ParseResult:
    """Parse `data` in format `fmt`. `exact` only matters for plain domain lists."""
    try:
        parser = FORMATS[fmt]
    except KeyError:
        raise ListError(f"unknown list format {fmt!r} (known: {', '.join(FORMATS)})",
                        source=source) from None
    if fmt == "domains":
        return parser(data, exact=exact, collector=collector)
    if fmt == "ut1":
        return parser(data, category=category, source=source, collector=collector)
    return parser(data, collector=collector)


def spool(fmt: str, data: bytes, directory: str | os.PathLike[str], *, exact: bool = False,
          category: str | None = None, source: str | None = None) -> SpooledResult:
    """Parse like `parse`, but into sorted runs under `directory` (the compiler's input for
    big lists: names never held as str). Checked and counted exactly as `parse` does;
    on an error the runs written so far are removed."""
    collectors: list[SpoolCollector] = []

    def make(**kw: bool) -> SpoolCollector:
        c = SpoolCollector(directory, **kw)
        collectors.append(c)
        return c

    try:
        return parse(fmt, data, exact=exact, category=category, source=source,  # type: ignore[return-value]
                     collector=make)
    except BaseException:
        for c in collectors:
            c.spool.discard()
        raise
