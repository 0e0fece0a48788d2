"""Normalise list entries into the one form the index stores.

Lowercase, no trailing dot, Unicode labels as punycode (IDNA 2008 with UTS #46
mapping), underscores kept (real hostnames such as `_dmarc` or `a_b.example.com`
appear in lists and in queries). Bare IPv4 addresses are kept apart for the proxy.
Everything else is rejected with a reason so parsers can count why.
"""

from __future__ import annotations

import re

try:  # the idna package implements IDNA 2008 + UTS 46; encodings.idna is IDNA 2003 only
    import idna as _idna
except ImportError:  # pragma: no cover - idna is an install requirement
    _idna = None

NAME = "name"
IP = "ip"
REJECT = "reject"

# Reject reasons (stable strings: they appear in `filterd lists status`).
EMPTY = "empty"
TOO_LONG = "too_long"
LABEL_TOO_LONG = "label_too_long"
EMPTY_LABEL = "empty_label"
BAD_CHAR = "bad_char"
BAD_IDNA = "bad_idna"
SINGLE_LABEL = "single_label"
BAD_IP = "bad_ip"
WILDCARD = "wildcard"

# Fast path: an ASCII name that is already valid after lowercasing.
_VALID = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+[a-z0-9_-]{1,63}")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def classify(raw: str) -> tuple[str, str]:
    """Return (NAME, name), (IP, address) or (REJECT, reason) for one raw entry."""
    name = raw.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if _VALID.fullmatch(name):
        if len(name) > 253:
            return REJECT, TOO_LONG
        if name[-1].isdigit() and _IPV4.fullmatch(name):
            if all(int(octet) <= 255 for octet in name.split(".")):
                return IP, ".".join(str(int(o)) for o in name.split("."))
            return REJECT, BAD_IP
        return NAME, name
    return _slow(name)


def _slow(name: str) -> tuple[str, str]:
    if not name:
        return REJECT, EMPTY
    if name.startswith("*"):
        return REJECT, WILDCARD
    if not name.isascii():
        name = name.translate(_DOTS)
        if name.endswith("."):
            name = name[:-1]
        try:
            name = ".".join(_to_ascii(label) for label in name.split("."))
        except ValueError:
            return REJECT, BAD_IDNA
    labels = name.split(".")
    if len(labels) < 2:
        return (REJECT, SINGLE_LABEL) if _LABEL.fullmatch(name) else (REJECT, BAD_CHAR)
    for label in labels:
        if not label:
            return REJECT, EMPTY_LABEL
        if len(label) > 63:
            return REJECT, LABEL_TOO_LONG
        if not _LABEL.fullmatch(label):
            return REJECT, BAD_CHAR
    if len(name) > 253:
        return REJECT, TOO_LONG
    return NAME, name


def _to_ascii(label: str) -> str:
    """One label to ASCII: ASCII labels stay (underscores allowed), others via IDNA."""
    if label.isascii():
        return label
    if _idna is not None:
        try:
            return _idna.encode(label, uts46=True, transitional=False).decode("ascii")
        except (_idna.IDNAError, UnicodeError) as exc:
            raise ValueError(str(exc)) from exc
    try:  # pragma: no cover - fallback without the idna package (IDNA 2003)
        return label.encode("idna").decode("ascii")
    except UnicodeError as exc:  # pragma: no cover
        raise ValueError(str(exc)) from exc


def normalize_name(raw: str) -> str | None:
    """The normalised name, or None if `raw` is not a valid host name (IPs are None too)."""
    kind, value = classify(raw)
    return value if kind == NAME else None
