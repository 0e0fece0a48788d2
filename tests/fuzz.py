"""A small seeded mutator for the fuzz tests: bytes (DNS packets, list files) and YAML text.

Deterministic for a seed (FILTERD_FUZZ_SEED, default fixed) so a failure can be replayed;
bounded by a count and a time budget so the default suite stays quick.
"""

from __future__ import annotations

import os
import random
import struct

SEED = int(os.environ.get("FILTERD_FUZZ_SEED", "20261201"))
# FILTERD_FUZZ_SCALE=10 runs ten times as many cases (opt-in, longer).
SCALE = float(os.environ.get("FILTERD_FUZZ_SCALE", "1"))

_INTERESTING = [0, 1, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF]


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One to four random edits of `data` (flip, set, insert, delete, duplicate, splice)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(b)
        if op == 0 and n:                       # flip a bit
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:                     # an interesting byte
            b[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2:                           # insert random bytes
            i = rng.randint(0, n)
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and n > 1:                 # delete a range
            i = rng.randrange(n)
            del b[i:i + rng.randint(1, 8)]
        elif op == 4 and n:                     # truncate
            del b[rng.randrange(n):]
        elif op == 5 and n > 2:                 # duplicate a chunk
            i = rng.randrange(n - 1)
            j = rng.randint(i + 1, min(n, i + 32))
            b[j:j] = b[i:j]
        elif op == 6 and pool:                  # splice with another seed
            other = rng.choice(pool)
            cut = rng.randint(0, len(b))
            b = b[:cut] + other[rng.randint(0, len(other)):]
        elif op == 7 and n >= 12:               # a header count (qd, an, ns, ar)
            k = 4 + 2 * rng.randrange(4)
            b[k:k + 2] = struct.pack("!H", rng.choice([0, 1, 2, 0xFFFF, rng.randrange(65536)]))
        elif op == 8 and n:                     # a 16-bit field anywhere
            i = rng.randrange(n)
            b[i:i + 2] = struct.pack("!H", rng.choice([0, 1, 41, 255, 0xFFFF]))
    return bytes(b)


def mutate_text(rng: random.Random, text: str) -> str:
    """Line-level edits of YAML: delete, duplicate, re-indent, replace a value, garble."""
    lines = text.splitlines()
    tokens = ["", "null", "~", "[]", "{}", "-1", "99999999999999999999", "yes", "'", '"',
              "[a, b", "{x: 1}", "&a", "*a", "!!python/object:os.system", "\t", "%",
              "é", "\u202e", "2026-13-45", "25:61", "0.0.0.0/33", "*.", "..", "a" * 300]
    for _ in range(rng.randint(1, 3)):
        if not lines:
            lines = [rng.choice(tokens)]
        i = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = " " * rng.choice([1, 2, 3, 4, 8]) + lines[i].lstrip()
        elif op == 3 and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {rng.choice(tokens)}"
        elif op == 4:
            pos = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:pos] + rng.choice(tokens) + lines[i][pos:]
        else:
            lines[i] = lines[i][: rng.randint(0, len(lines[i]))]
    return "\n".join(lines) + "\n"
