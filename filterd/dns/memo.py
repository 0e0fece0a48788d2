"""Whole UDP answers remembered for under a second, keyed by the query's bytes.

Most of a school's queries repeat within a second: the same device asks the
same name again (A then AAAA, retries, several tabs), and every device of a
class asks for the same few sites. A query whose bytes after the ID are
identical to one answered a moment ago, from the same client address, gets the
same answer, so the listener sends it again with the new ID: no parsing, no
decision, no rendering. Everything that answer depends on is in the key (the
client decides the group; flags, question and EDNS are the bytes) or bounds the
entry's life (the decision's second, the cached records' TTL tick); a reload
clears it all.

Two generations instead of per-entry eviction: entries go into the current one;
every `lifetime` seconds (or when it is full) it becomes the old one, and the
old one, all expired by then, is freed a few entries per insert. Each entry
still carries its own expiry, so an answer is never sent after the moment it
stops being exact.
"""

from __future__ import annotations

from typing import Any

# An entry: (expires, answer without its ID, kind, decision, query).
KIND_LOCAL = 0     # made here from the decision (block, rewrite, ANY)
KIND_BLOCKED = 1
KIND_CACHED = 2    # an upstream answer from the cache

MemoEntry = tuple[float, bytes, int, Any, Any]
MemoKey = tuple[str, bytes]


class Recent:
    """A map of entries that live about a second: tuples whose first item is their expiry.

    At most 2 x max_entries entries are held: the bound is what keeps one-off names
    (random blocked names, cache misses) from costing memory nothing reuses.
    """

    __slots__ = ("_cur", "_dying", "_old", "lifetime", "max_entries", "rotate_at")

    def __init__(self, lifetime: float = 1.0, max_entries: int = 5_000) -> None:
        if lifetime < 0 or max_entries < 0:
            raise ValueError("memo lifetime and size must not be negative")
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._cur: dict[Any, tuple] = {}
        self._old: dict[Any, tuple] = {}
        self._dying: dict[Any, tuple] = {}
        self.rotate_at = 0.0

    @property
    def enabled(self) -> bool:
        return self.lifetime > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._cur) + len(self._old)

    def clear(self) -> None:
        self._cur = {}
        self._old = {}
        self._dying = {}

    def get(self, key: Any, now: float) -> Any:
        hit = self._cur.get(key)
        if hit is None:
            hit = self._old.get(key)
            if hit is None:
                return None
        return hit if hit[0] > now else None

    def put(self, key: Any, entry: tuple, now: float) -> None:
        cur = self._cur
        dying = self._dying
        if dying:
            # Freed a few at a time: 5,000 entries freed at once (answers, decisions and
            # their queries) held the query path for 1-2 ms once a second.
            for _ in range(4):
                if not dying:
                    break
                dying.popitem()
        if now >= self.rotate_at or len(cur) >= self.max_entries:
            # Nothing in the old generation outlives a lifetime: it is all expired now.
            self._dying = self._old
            self._old = cur
            self._cur = cur = {}
            self.rotate_at = now + self.lifetime
        cur[key] = entry


class AnswerMemo(Recent):
    """Whole UDP answers by (client address, query bytes after the ID): MemoEntry values."""

    __slots__ = ()
