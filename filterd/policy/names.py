"""Domain-name normalisation for policy entries (allow, deny, education, protected).

Policy files may hold Unicode names (`trường.vn`); the DNS path sees punycode
(`xn--trng-rib8295b.vn`), so entries are normalised once at load: lowercase,
no trailing dot, IDNA (UTS #46) punycode. Underscores are kept (they occur in
real names such as `_dmarc` and some CDN hosts). The lists engineer owns
`filterd.lists.normalize`; this module stays the policy's single entry point.
"""

from __future__ import annotations

import re

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class InvalidName(ValueError):
    """A name is not a valid domain name; the message says why."""


def normalize_name(name: str) -> str:
    """Return the canonical ASCII form of `name` or raise InvalidName (a ValueError)."""
    if not isinstance(name, str):
        raise InvalidName("a domain name must be text")
    n = name.strip().rstrip(".").lower()
    if not n:
        raise InvalidName("empty name")
    if not n.isascii():
        try:
            n = idna.encode(n, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidName(f"invalid international name {name!r}: {exc}") from None
    if len(n) > 253:
        raise InvalidName(f"name longer than 253 characters: {name!r}")
    labels = n.split(".")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidName(f"invalid name {name!r} (bad label {label!r})")
    return n


def parents(name: str) -> list[str]:
    """`a.b.c` -> [`a.b.c`, `b.c`, `c`]: the name and every parent domain, most specific first."""
    out = [name]
    i = name.find(".")
    while i != -1:
        out.append(name[i + 1:])
        i = name.find(".", i + 1)
    return out
