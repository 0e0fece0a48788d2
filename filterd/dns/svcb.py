"""SVCB / HTTPS records (RFC 9460): removing the `ech` parameter.

A browser that finds `ech=` in a name's HTTPS record encrypts the real ClientHello
and shows only the provider's public name (e.g. cloudflare-ech.com) in the clear
SNI. The SNI relay, transparent mode and the SNI check before interception then
decide on a name that is not the site's. For the groups whose HTTPS filterd
filters by name, the resolver removes `ech` from every SVCB (64) and HTTPS (65)
record before the answer enters the cache (resolver.Resolver._fetched), so a
cached answer, a remembered (memo) answer and a fresh one all go out without it.
The record keeps its priority, target and every other parameter; `mandatory` loses
`ech` too (a client must drop a record whose mandatory keys it cannot use).
"""

from __future__ import annotations

import struct

from filterd.dns import wire

TYPE_SVCB = 64
TYPE_HTTPS = 65
SVCB_TYPES = frozenset({TYPE_SVCB, TYPE_HTTPS})
KEY_MANDATORY = 0
KEY_ECH = 5

_U16 = struct.Struct("!H")
_PAIR = struct.Struct("!HH")


class SvcbError(ValueError):
    """SVCB/HTTPS RDATA that does not parse (RFC 9460 2.2)."""


def _split(rdata: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """(priority + target bytes, [(key, value)]), validated."""
    n = len(rdata)
    if n < 3:
        raise SvcbError("SVCB RDATA shorter than priority and target")
    pos = 2
    total = 0
    while True:   # the target is never compressed (RFC 9460 2.2)
        if pos >= n:
            raise SvcbError("SVCB target runs past the RDATA")
        length = rdata[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise SvcbError("compressed or extended label in the SVCB target")
        total += length + 1
        pos += length
        if total > wire.MAX_NAME - 1 or pos > n:
            raise SvcbError("bad SVCB target")
    head = rdata[:pos]
    params: list[tuple[int, bytes]] = []
    last = -1
    while pos < n:
        if pos + 4 > n:
            raise SvcbError("SvcParam header truncated")
        key, length = _PAIR.unpack_from(rdata, pos)
        pos += 4
        if key <= last:
            raise SvcbError("SvcParam keys not in strictly increasing order")
        if pos + length > n:
            raise SvcbError("SvcParam value truncated")
        params.append((key, rdata[pos:pos + length]))
        pos += length
        last = key
    return head, params


def strip_ech_rdata(rdata: bytes) -> bytes | None:
    """The RDATA without `ech` (and without `ech` in `mandatory`); None if it had none."""
    head, params = _split(rdata)
    if not any(key == KEY_ECH for key, _ in params):
        return None
    out = [head]
    for key, value in params:
        if key == KEY_ECH:
            continue
        if key == KEY_MANDATORY:
            if len(value) % 2:
                raise SvcbError("mandatory list of odd length")
            keys = [k for (k,) in struct.iter_unpack("!H", value) if k != KEY_ECH]
            if not keys:
                continue
            value = b"".join(_U16.pack(k) for k in keys)
        out.append(_PAIR.pack(key, len(value)) + value)
    return b"".join(out)


def ech_records(data: bytes, lay: wire.Layout) -> dict[int, bytes]:
    """{record index: RDATA without ech} for every SVCB/HTTPS record of a scanned response
    that carries ech; empty (the common case) when there is nothing to strip.

    Record indexes count every record but the OPT, in message order, as
    wire.scan_response lists their TTL offsets.
    """
    found: dict[int, bytes] = {}
    for i, ttl_at in enumerate(lay.ttl_offsets):
        rtype = _U16.unpack_from(data, ttl_at - 4)[0]
        if rtype not in SVCB_TYPES:
            continue
        rdlen = _U16.unpack_from(data, ttl_at + 4)[0]
        start = ttl_at + 6
        stripped = strip_ech_rdata(data[start:start + rdlen])
        if stripped is not None:
            found[i] = stripped
    return found


def strip_ech(data: bytes, lay: wire.Layout) -> tuple[bytes, wire.Layout] | None:
    """The response without `ech` in any SVCB/HTTPS record, and its layout; None if none.

    Shorter RDATA moves every later byte, so the message is re-encoded by dnslib
    (names re-compressed, RDLENGTH recomputed). The changed records no longer match
    their RRSIGs, so AD is cleared: filterd no longer vouches for what it altered.
    Raises SvcbError (or ValueError) when the message cannot be re-encoded; the
    resolver then answers SERVFAIL rather than pass `ech` on (fail closed).
    """
    found = ech_records(data, lay)
    if not found:
        return None
    from dnslib import RD, DNSRecord

    try:
        rec = DNSRecord.parse(data)
    except Exception as exc:   # dnslib raises DNSError and friends
        raise SvcbError(f"response with ech not re-encodable: {exc}") from None
    index = 0
    for section in (rec.rr, rec.auth, rec.ar):
        for record in section:
            if record.rtype == 41:   # OPT: not counted in the layout
                continue
            new = found.get(index)
            if new is not None:
                if record.rtype not in SVCB_TYPES:
                    raise SvcbError("record order differs between scan and parse")
                record.rdata = RD(new)
            index += 1
    if index != len(lay.ttl_offsets):
        raise SvcbError("record count differs between scan and parse")
    rec.header.ad = 0
    out = bytes(rec.pack())
    return out, wire.scan_response(out)
