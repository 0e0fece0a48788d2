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

from filterd.dns import fastpath

# An entry: (expires, answer without its ID, kind, decision, query).
KIND_LOCAL = 0     # made here from the decision (block, rewrite, ANY)
KIND_BLOCKED = 1
KIND_CACHED = 2    # an upstream answer from the cache

MemoEntry = tuple[float, bytes, int, Any, Any]
MemoKey = tuple[str, bytes]


# The maps themselves are part of the fast path (filterd/dns/_pure.py, _speedups.pyx).
Recent = fastpath.Recent
AnswerMemo = fastpath.AnswerMemo

__all__ = ["KIND_BLOCKED", "KIND_CACHED", "KIND_LOCAL", "AnswerMemo", "MemoEntry", "MemoKey",
           "Recent"]
