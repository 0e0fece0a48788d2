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
