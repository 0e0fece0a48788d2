"""Values shared by the list parsers, the compiled index and the updater.

Kept free of I/O so the policy engine can import them cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from filterd.errors import ListError

USAGES = ("black", "white")   # UT1 `usage`: black = block list, white = allow list
MATCHES = ("subtree", "exact")  # domain-and-subdomains, or the exact host only


class ListHit(NamedTuple):
    """One list entry that matches a name: the entry, its categories and the lists it came from.

    `categories` are the block categories; `allow_categories` come from `usage: white`
    lists (UT1 allow lists) and never block. `exact` is True when the entry matches only
    that host, False when it covers every subdomain too. A NamedTuple rather than a frozen
    dataclass: it is built on every list hit and is twice as fast to construct.
    """

    domain: str
    categories: frozenset[str]
    sources: tuple[str, ...]
    exact: bool = False
    allow_categories: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the index remembers about one source list (shown by `filterd lists status`)."""

    name: str
    category: str
    version: str = ""
    count: int = 0
    license: str = ""
    fetched: float | None = None       # unix time of the download that produced the data
    usage: str = "black"
    url: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ListError(f"bad source name {self.name!r}")
        if not self.category:
            raise ListError("source without a category", source=self.name)
        if self.usage not in USAGES:
            raise ListError(f"usage must be one of {USAGES}, not {self.usage!r}", source=self.name)
        if self.count < 0:
            raise ListError("negative count", source=self.name)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "category": self.category, "version": self.version,
                "count": self.count, "license": self.license, "fetched": self.fetched,
                "usage": self.usage, "url": self.url}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> SourceInfo:
        return cls(**{k: d[k] for k in ("name", "category", "version", "count", "license",
                                        "fetched", "usage", "url") if k in d})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ParseResult:
    """What a parser found in one download: normalised names, kept apart by kind.

    `subtree` names match the name and every subdomain; `exact` names only the host.
    `ips` are bare IPv4 entries (DNS cannot block them, the proxy can); `urls` are UT1
    `host/path` prefixes and `expressions` UT1 URL regexes, both for the HTTP proxy.
    `rejects` counts the skipped lines per reason.
    """

    subtree: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    expressions: tuple[str, ...] = ()
    rejects: Mapping[str, int] = field(default_factory=dict)
    usage: str = "black"

    def __post_init__(self) -> None:
        if self.usage not in USAGES:
            raise ListError(f"usage must be one of {USAGES}, not {self.usage!r}")
        if any(n < 0 for n in self.rejects.values()):
            raise ListError("negative reject count")
        object.__setattr__(self, "rejects", MappingProxyType(dict(self.rejects)))

    @property
    def count(self) -> int:
        """Entries that the index will hold (names, IPs and URLs)."""
        return len(self.subtree) + len(self.exact) + len(self.ips) + len(self.urls)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())
