"""dnslib for everything off the hot path: rewrite chains, re-packing, type names."""

from __future__ import annotations

from dnslib import CNAME, QTYPE, RR, DNSRecord

from filterd.dns import wire
from filterd.dns.wire import Question

_TYPE_NAMES: dict[int, str] = {}


def type_name(qtype: int) -> str:
    """'A', 'AAAA', 'HTTPS'... or 'TYPE65534' for types dnslib does not name."""
    name = _TYPE_NAMES.get(qtype)
    if name is None:
        try:
            name = str(QTYPE.get(qtype))
        except Exception:
            name = f"TYPE{qtype}"
        if name.isdigit():
            name = f"TYPE{qtype}"
        if len(_TYPE_NAMES) < 4096:
            _TYPE_NAMES[qtype] = name
    return name


def repack_without_opt(data: bytes) -> bytes:
    """The same message with its OPT record removed, re-encoded by dnslib."""
    rec = DNSRecord.parse(data)
    rec.ar = [r for r in rec.ar if r.rtype != QTYPE.OPT]
    rec.set_header_qa()
    return rec.pack()


def cname_chain(q: Question, target: str, target_answer: bytes, ttl: int) -> bytes:
    """`q.name CNAME target` followed by the target's records from `target_answer`.

    `target_answer` is a full response for (target, q.qtype); its rcode and
    authority records are carried over so a missing target stays visible.
    """
    up = DNSRecord.parse(target_answer)
    flags = q.flags & (wire.RD | wire.CD)
    reply = DNSRecord.parse(wire.HEADER.pack(q.id, flags, 1, 0, 0, 0) + q.question).reply()
    reply.header.ra = 1
    reply.header.rcode = up.header.rcode
    qname = reply.q.qname
    reply.add_answer(RR(qname, QTYPE.CNAME, ttl=ttl, rdata=CNAME(target + ".")))
    for rr in up.rr:
        reply.add_answer(rr)
    for rr in up.auth:
        reply.add_auth(rr)
    return reply.pack()
