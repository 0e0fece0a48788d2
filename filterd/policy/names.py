"""Domain-name normalisation for policy entries (allow, deny, education, protected).

Policy files may hold Unicode names (`trường.vn`); the DNS path sees punycode
(`xn--trng-rib8295b.vn`), so entries are normalised once at load with the same
rules as the category lists (`filterd.lists.normalize`): lowercase, no trailing
dot, IDNA 2008 / UTS #46 punycode, underscores kept. Unlike list entries, a
policy entry may be a bare top-level domain (`deny: [xxx, casino]`).
"""

from __future__ import annotations

import re

from filterd.lists import normalize as _lists

_TLD = re.compile(r"^[a-z0-9-]{1,63}$")
_WHY = {
    _lists.EMPTY: "empty name",
    _lists.TOO_LONG: "name longer than 253 characters",
    _lists.LABEL_TOO_LONG: "a label longer than 63 characters",
    _lists.EMPTY_LABEL: "an empty label (two dots in a row?)",
    _lists.BAD_CHAR: "a character that cannot be in a domain name",
    _lists.BAD_IDNA: "an invalid international name",
    _lists.WILDCARD: "a wildcard (write the domain itself: it covers its subdomains)",
}


class InvalidName(ValueError):
    """A name is not a valid domain name; the message says why."""


def normalize_name(name: str) -> str:
    """Return the canonical ASCII form of `name` or raise InvalidName (a ValueError)."""
    if not isinstance(name, str):
        raise InvalidName("a domain name must be text")
    kind, value = _lists.classify(name)
    if kind == _lists.NAME:
        return value
    if kind == _lists.IP:
        raise InvalidName(f"{name!r} is an IP address, not a domain name")
    if value == _lists.SINGLE_LABEL:
        tld = name.strip().rstrip(".").lower()
        if _TLD.match(tld):
            return tld
    raise InvalidName(f"invalid name {name!r}: {_WHY.get(value, value)}")


def parents(name: str) -> list[str]:
    """`a.b.c` -> [`a.b.c`, `b.c`, `c`]: the name and every parent domain, most specific first."""
    out = [name]
    i = name.find(".")
    while i != -1:
        out.append(name[i + 1:])
        i = name.find(".", i + 1)
    return out
