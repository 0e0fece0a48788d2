"""Domain-name normalisation for policy entries (allow, deny, education, protected).

Policy files may hold Unicode names (`trường.vn`); the DNS path sees punycode
(`xn--trng-rib8295b.vn`), so entries are normalised once at load with the same
rules as the category lists (`filterd.lists.normalize`): lowercase, no trailing
dot, IDNA 2008 / UTS #46 punycode, underscores kept. Unlike list entries, a
policy entry may be a bare top-level domain (`deny: [xxx, casino]`).
"""

from __future__ import annotations

import re

from filterd.errors import CodedValueError
from filterd.lists import normalize as _lists

_TLD = re.compile(r"^[a-z0-9-]{1,63}$")
_WHY = {   # (en, vi)
    _lists.EMPTY: ("empty name", "tên trống"),
    _lists.TOO_LONG: ("name longer than 253 characters", "tên dài hơn 253 ký tự"),
    _lists.LABEL_TOO_LONG: ("a label longer than 63 characters",
                            "có một phần (giữa hai dấu chấm) dài hơn 63 ký tự"),
    _lists.EMPTY_LABEL: ("an empty label (two dots in a row?)",
                         "có một phần rỗng (hai dấu chấm liền nhau?)"),
    _lists.BAD_CHAR: ("a character that cannot be in a domain name",
                      "có ký tự không được dùng trong tên miền"),
    _lists.BAD_IDNA: ("an invalid international name", "tên miền tiếng Việt/quốc tế không hợp lệ"),
    _lists.WILDCARD: ("a wildcard (write the domain itself: it covers its subdomains)",
                      "có dấu * (hãy viết chính tên miền: nó đã gồm mọi tên miền con)"),
}


class InvalidName(CodedValueError):
    """A name is not a valid domain name; the message says why."""


def normalize_name(name: str) -> str:
    """Return the canonical ASCII form of `name` or raise InvalidName (a ValueError)."""
    if not isinstance(name, str):
        raise InvalidName("name.not_text")
    kind, value = _lists.classify(name)
    if kind == _lists.NAME:
        return value
    if kind == _lists.IP:
        raise InvalidName("name.is_ip", value=name)
    if value == _lists.SINGLE_LABEL:
        tld = name.strip().rstrip(".").lower()
        if _TLD.match(tld):
            return tld
    en, vi = _WHY.get(value, (value, value))
    raise InvalidName("name.invalid", value=name, why=en, why_vi=vi)


def parents(name: str) -> list[str]:
    """`a.b.c` -> [`a.b.c`, `b.c`, `c`]: the name and every parent domain, most specific first."""
    out = [name]
    i = name.find(".")
    while i != -1:
        out.append(name[i + 1:])
        i = name.find(".", i + 1)
    return out
