"""Domain rule tables: allow, deny, education, protected, bypass and rewrite entries.

Syntax of an entry (the same in every policy file and list):

    example.com      example.com and every name under it (www.example.com, a.b.example.com)
    =example.com     exactly example.com, nothing under it

Entries are normalised at load (lowercase, punycode). A lookup takes the
query name's parent list (most specific first) so the engine builds it once
per decision and shares it between tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from filterd.errors import CodedValueError
from filterd.policy.decision import RuleSource
from filterd.policy.names import normalize_name


@dataclass(frozen=True, slots=True)
class DomainEntry:
    """One entry as written, where it came from, and an optional payload (e.g. a target)."""

    domain: str          # normalised, without the '=' marker
    exact: bool
    source: RuleSource
    value: object = None

    @property
    def rule(self) -> str:
        return ("=" if self.exact else "") + self.domain


def parse_entry(text: str) -> tuple[str, bool]:
    """'=host.example' -> ('host.example', True); 'example.com' -> ('example.com', False)."""
    t = text.strip()
    exact = t.startswith("=")
    if exact:
        t = t[1:]
    if t.startswith("*."):
        raise CodedValueError("name.wildcard", domain=t[2:], value=text)
    return normalize_name(t), exact


class DomainTable:
    """Immutable exact/suffix tables; `match(parents)` returns the most specific entry."""

    __slots__ = ("_exact", "_suffix", "entries")

    def __init__(self, entries: Iterable[DomainEntry] = ()) -> None:
        self.entries = tuple(entries)
        self._exact: dict[str, DomainEntry] = {}
        self._suffix: dict[str, DomainEntry] = {}
        for e in self.entries:
            (self._exact if e.exact else self._suffix).setdefault(e.domain, e)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, parents: list[str]) -> DomainEntry | None:
        exact = self._exact
        if exact:
            e = exact.get(parents[0])
            if e is not None:
                return e
        suffix = self._suffix
        if suffix:
            for p in parents:
                e = suffix.get(p)
                if e is not None:
                    return e
        return None

    def merged(self, other: DomainTable) -> DomainTable:
        """Entries of both; on the same rule `self` (the child) wins."""
        return DomainTable((*self.entries, *other.entries))


class LayeredTable:
    """Several DomainTables merged into one pass: `match` returns the lowest layer that matches.

    Layers are precedence ranks (a lower rank wins wherever it matches in the
    name's parent chain); within a layer the most specific entry wins and an
    exact entry beats a domain entry for the same name. One walk of the parent
    chain with one or two dict lookups per label replaces one walk per table.
    """

    __slots__ = ("_exact", "_suffix")

    def __init__(self, layers: Iterable[tuple[int, DomainTable]]) -> None:
        self._exact: dict[str, tuple[int, DomainEntry]] = {}
        self._suffix: dict[str, tuple[int, DomainEntry]] = {}
        for rank, table in sorted(layers, key=lambda lt: lt[0]):
            for e in table.entries:
                (self._exact if e.exact else self._suffix).setdefault(e.domain, (rank, e))

    def match(self, parents: list[str]) -> tuple[int, DomainEntry] | None:
        best = self._exact.get(parents[0]) if self._exact else None
        suffix = self._suffix
        if suffix:
            for p in parents:
                v = suffix.get(p)
                if v is not None and (best is None or v[0] < best[0]):
                    best = v
        return best
