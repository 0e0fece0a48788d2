"""k-anonymity for the top blocked names: a name is listed only when at least
k distinct devices hit it that day, so a name that points at one child (or a
handful) never leaves the school.

Names that can describe a device or a local host rather than a public site
(reverse-DNS names under .arpa, .local/.lan/.home/.internal, single labels,
names carrying an address) are never listed, whatever their device count.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from filterd.errors import ConfigError

K_DEFAULT = 5
K_MIN = 3
TOP_PER_CATEGORY = 20

_LOCAL_SUFFIXES = (".arpa", ".local", ".lan", ".home", ".internal", ".localdomain",
                   ".home.arpa", ".intranet", ".corp", ".private")
_NAME_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+"
                      r"[a-z][a-z0-9-]{1,62}$")
_ADDRESS_RE = re.compile(r"(\d{1,3}[.-]){3}\d{1,3}|([0-9a-f]{2}[:-]){5}[0-9a-f]{2}|[0-9a-f]{12}")


def check_k(k: int) -> int:
    """Fail closed: k below 3 would let a name that points at a single child leave."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise ConfigError(f"k_anonymity must be an integer, got {k!r}", key="sync.k_anonymity")
    if k < K_MIN:
        raise ConfigError(f"k_anonymity must be at least {K_MIN}, got {k}",
                          key="sync.k_anonymity")
    return k


def publishable_name(name: str) -> bool:
    """A public DNS name that says nothing about a device on the school's network."""
    name = name.strip().lower().rstrip(".")
    if not _NAME_RE.match(name) or name.endswith(_LOCAL_SUFFIXES):
        return False
    return not _ADDRESS_RE.search(name)


@dataclass(frozen=True, slots=True)
class TopName:
    name: str
    devices: int
    hits: int


def top_names(hits: Iterable[tuple[str, str, str]], k: int = K_DEFAULT,
              limit: int = TOP_PER_CATEGORY) -> dict[str, list[TopName]]:
    """`hits` are (category, name, device pseudonym) for blocked events.

    Returns per category the names hit by >= k distinct devices, most devices first.
    """
    check_k(k)
    devices: dict[tuple[str, str], set[str]] = defaultdict(set)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for category, name, pseudonym in hits:
        name = name.strip().lower().rstrip(".")
        key = (category, name)
        devices[key].add(pseudonym)
        counts[key] += 1
    out: dict[str, list[TopName]] = defaultdict(list)
    for (category, name), devs in devices.items():
        if len(devs) >= k and publishable_name(name):
            out[category].append(TopName(name, len(devs), counts[(category, name)]))
    return {c: sorted(v, key=lambda t: (-t.devices, -t.hits, t.name))[:limit]
            for c, v in sorted(out.items())}


# -- every other figure: counts, device counts, bypass -----------------------------------

ALL_GROUPS = "all"        # tier rolled up: all students of the school
FEWER_THAN_K = "fewer_than_k"

CellKey = tuple[str, str, str, int | None]   # group, category, action, local hour (None: day)


@dataclass(frozen=True, slots=True)
class Cell:
    """One published count row and what stands behind it (members: the raw cells summed)."""

    group: str
    category: str
    action: str
    hour: int | None
    n: int
    devices: frozenset[str]
    members: frozenset[CellKey]


@dataclass(frozen=True, slots=True)
class Rollup:
    published: list[Cell]
    suppressed: frozenset[CellKey]   # raw cells that no roll-up brought to k devices
    suppressed_n: int


def rollup_counts(cells: dict[CellKey, tuple[int, set[str]]], k: int, *,
                  other: str = "other") -> Rollup:
    """Publish each (group, category, action, hour) count only with >= k distinct devices.

    A raw cell below k is rolled up, in this order, with the other cells still below k:
    hour -> the rest of the day (hour None), category -> `other`, group -> `all`; what is
    still below k after the last step is suppressed. Every raw cell ends in exactly one
    published row or in `suppressed`, so the rows never overlap (no figure can be
    recovered by subtracting one from another)."""
    check_k(k)
    out: dict[CellKey, list] = {}

    def publish(key: CellKey, n: int, devs: set[str], members: set[CellKey]) -> None:
        row = out.setdefault(key, [0, set(), set()])
        row[0] += n
        row[1] |= devs
        row[2] |= members

    # level 0: the hour itself
    left: dict[CellKey, tuple[int, set[str], set[CellKey]]] = {}
    for key, (n, devs) in cells.items():
        if n <= 0:
            continue
        if len(devs) >= k:
            publish(key, n, devs, {key})
        else:
            left[key] = (n, set(devs), {key})

    def merge(items: dict[CellKey, tuple[int, set[str], set[CellKey]]], to_key
              ) -> dict[CellKey, tuple[int, set[str], set[CellKey]]]:
        merged: dict[CellKey, list] = {}
        for key, (n, devs, members) in items.items():
            row = merged.setdefault(to_key(key), [0, set(), set()])
            row[0] += n
            row[1] |= devs
            row[2] |= members
        rest = {}
        for key, (n, devs, members) in merged.items():
            if len(devs) >= k:
                publish(key, n, devs, members)
            else:
                rest[key] = (n, devs, members)
        return rest

    left = merge(left, lambda key: (key[0], key[1], key[2], None))
    left = merge(left, lambda key: (key[0], other, key[2], None))
    left = merge(left, lambda key: (ALL_GROUPS, other, key[2], None))
    suppressed = frozenset(m for _n, _d, members in left.values() for m in members)
    return Rollup(
        published=[Cell(g, c, a, h, n, frozenset(d), frozenset(m))
                   for (g, c, a, h), (n, d, m) in sorted(
                       out.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2],
                                                    -1 if kv[0][3] is None else kv[0][3]))],
        suppressed=suppressed, suppressed_n=sum(n for n, _d, _m in left.values()))


def device_figures(devices: dict[str, set[str]], k: int) -> dict[str, int | str]:
    """Distinct devices per group, and for all students: the number when >= k, else
    FEWER_THAN_K (the value itself never leaves)."""
    check_k(k)
    out: dict[str, int | str] = {}
    every: set[str] = set()
    for group, devs in sorted(devices.items()):
        every |= devs
        out[group] = len(devs) if len(devs) >= k else FEWER_THAN_K
    if devices:
        out[ALL_GROUPS] = len(every) if len(every) >= k else FEWER_THAN_K
    return out


def bypass_figures(attempts: dict[str, int], devices: dict[str, set[str]], k: int
                   ) -> dict[str, dict[str, int]]:
    """Bypass attempts per group when >= k devices made them; the groups below k together
    as `all` when they reach k; otherwise nothing (an attempt count is one child's record)."""
    check_k(k)
    out: dict[str, dict[str, int]] = {}
    rest_n, rest_devs = 0, set()
    for group in sorted(attempts):
        devs = devices.get(group, set())
        if len(devs) >= k:
            out[group] = {"attempts": attempts[group], "devices": len(devs)}
        else:
            rest_n += attempts[group]
            rest_devs |= devs
    if rest_n and len(rest_devs) >= k:
        row = out.setdefault(ALL_GROUPS, {"attempts": 0, "devices": 0})
        row["attempts"] += rest_n
        row["devices"] = len(rest_devs | devices.get(ALL_GROUPS, set()))
    return out
