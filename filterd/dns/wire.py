"""DNS wire format on raw bytes: the hot path.

Every query is parsed here without building objects for the whole message:
the header, the one question and the optional OPT record. Answers the server
makes itself (blocks, errors, cached answers) are assembled from bytes too.
dnslib (see codec.py) does everything that is not on the hot path, and the
tests check that both agree on generated messages.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from filterd.dns.edns import OPT, Edns, build_opt  # noqa: F401 - OPT: wire.OPT for callers
from filterd.errors import FilterdError

HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")   # type, class, ttl, rdlength
_U16 = struct.Struct("!H")

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010

OPCODE_QUERY = 0
OPCODE_NOTIFY = 4
CLASS_IN = 1
CLASS_ANY = 255

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_HINFO = 13
TYPE_AAAA = 28
TYPE_IXFR = 251
TYPE_AXFR = 252
TYPE_ANY = 255

MAX_NAME = 255


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16   # extended: needs an OPT record (RFC 6891)


class WireError(FilterdError):
    """A message is not something we answer normally."""


class Drop(WireError):
    """Never answer this packet (too short to carry an ID, or itself a response)."""


class BadQuery(WireError):
    """Answer this packet with an error rcode; `question` is set when it parsed."""

    def __init__(self, rcode: Rcode, why: str, question: Question | None = None) -> None:
        super().__init__(why)
        self.rcode = rcode
        self.question = question


class Question:
    """A parsed query: header fields, the question and the client's EDNS."""

    __slots__ = ("edns", "flags", "id", "name", "qclass", "qtype", "question")

    def __init__(self, id: int, flags: int, name: str, qtype: int, qclass: int,
                 question: bytes, edns: Edns | None) -> None:
        self.id = id
        self.flags = flags
        self.name = name            # lowercase, no trailing dot, "" for the root
        self.qtype = qtype
        self.qclass = qclass
        self.question = question    # the question section as the client sent it (0x20 case kept)
        self.edns = edns

    @property
    def max_payload(self) -> int:
        return self.edns.max_payload if self.edns else 512

    @property
    def do(self) -> bool:
        return bool(self.edns and self.edns.do)

    def __repr__(self) -> str:
        return f"Question({self.name!r}, {self.qtype}, id={self.id})"


def read_name(data: bytes, pos: int) -> int:
    """Skip a (possibly compressed) name at `pos`; return the offset after it.

    Pointers are only followed for validation: each must point strictly backwards,
    so a compression loop cannot spin.
    """
    n = len(data)
    end = -1
    total = 0
    limit = pos
    while True:
        if pos >= n:
            raise BadQuery(Rcode.FORMERR, "name runs past the message")
        length = data[pos]
        if length == 0:
            return pos + 1 if end < 0 else end
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise BadQuery(Rcode.FORMERR, "truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= limit:
                raise BadQuery(Rcode.FORMERR, "compression pointer loops or points forward")
            limit = target
            pos = target
            continue
        if kind:
            raise BadQuery(Rcode.FORMERR, "unknown label type")
        total += length + 1
        if total > MAX_NAME:
            raise BadQuery(Rcode.FORMERR, "name longer than 255 octets")
        pos += length + 1


def __getattr__(name: str) -> object:
    # parse_query and scan_response live in the fast path (filterd/dns/_pure.py and its
    # compiled twin), which imports this module: looked up on first use, then kept here.
    if name in ("parse_query", "scan_response"):
        from filterd.dns import fastpath

        found = getattr(fastpath, name)
        globals()[name] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# Building answers


def header(q: Question, rcode: int, an: int = 0, ns: int = 0, ar: int = 0, *,
           aa: bool = False, tc: bool = False, ad: bool = False) -> bytes:
    flags = QR | RA | (q.flags & (RD | CD | 0x7800)) | (rcode & 0xF)
    if aa:
        flags |= AA
    if tc:
        flags |= TC
    if ad:
        flags |= AD
    return HEADER.pack(q.id, flags, 1, an, ns, ar)


def opt_for(q: Question, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """Our OPT record for an answer to `q`, or b"" when the client did not use EDNS."""
    if q.edns is None:
        return b""
    return build_opt(do=q.edns.do, ext_rcode=ext_rcode, options=options)


def error_answer(q: Question, rcode: int, *, options: bytes = b"") -> bytes:
    """An answer with no records, carrying `rcode` (extended rcodes go in the OPT)."""
    if rcode > 15:
        if q.edns is None:
            rcode = Rcode.FORMERR
        else:
            opt = build_opt(do=q.edns.do, ext_rcode=rcode >> 4, options=options)
            return header(q, rcode & 0xF, ar=1) + q.question + opt
    opt = opt_for(q, options=options)
    return header(q, rcode, ar=1 if opt else 0) + q.question + opt


def bare_error(data: bytes, rcode: int) -> bytes:
    """An error answer for a packet whose question did not parse: the header only."""
    qid, flags = struct.unpack_from("!HH", data)
    flags = QR | (flags & (RD | 0x7800)) | (rcode & 0xF)
    return HEADER.pack(qid, flags, 0, 0, 0, 0)


def truncated_answer(q: Question) -> bytes:
    """TC=1 with the question only: tells a UDP client to retry over TCP."""
    opt = opt_for(q)
    return header(q, Rcode.NOERROR, ar=1 if opt else 0, tc=True) + q.question + opt


def rr(rtype: int, ttl: int, rdata: bytes, owner: bytes = b"\xc0\x0c") -> bytes:
    """One resource record; the default owner is a pointer to the question name."""
    return owner + _RR_FIXED.pack(rtype, CLASS_IN, ttl, len(rdata)) + rdata


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted name."""
    out = bytearray()
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
            if len(raw) > 63:
                raise ValueError(f"label too long in {name!r}")
            out.append(len(raw))
            out += raw
    out.append(0)
    return bytes(out)


# ---------------------------------------------------------------------------
# Reading answers (for the cache and the forwarder)


class Layout:
    """Where things are in a response: enough to patch TTLs and strip the OPT."""

    __slots__ = ("counts", "flags", "id", "min_ttl", "negative_ttl", "opt_end", "opt_start",
                 "question_end", "rcode", "ttl_offsets")

    def __init__(self) -> None:
        self.id = 0
        self.flags = 0
        self.rcode = 0
        self.counts = (0, 0, 0)
        self.question_end = 0
        self.ttl_offsets: list[int] = []
        self.min_ttl: int | None = None       # over answer + authority
        self.negative_ttl: int | None = None  # min(SOA TTL, SOA MINIMUM) from the authority
        self.opt_start = -1
        self.opt_end = -1


def question_matches(data: bytes, lay: Layout, q: Question) -> bool:
    """Does a response's question equal ours (case-insensitively)? Guards against spoofing."""
    return data[12:lay.question_end].lower() == q.question.lower()


def set_id(data: bytes, qid: int) -> bytes:
    return _U16.pack(qid) + data[2:]
