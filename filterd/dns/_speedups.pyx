# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, binding=True
"""The DNS fast path compiled: the same API and the same bytes as `_pure.py`.

`_pure.py` is the reference; this module must give the same bytes for the same
input (tests/dns/test_fastpath.py sends both the same packets, malformed ones
included). Codec, cache and loop only, never a rule: the policy engine stays
in Python. Plain C (POSIX + Linux recvmmsg/sendmmsg), no architecture flags:
it builds on aarch64 as on x86-64.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_Size
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

import logging

from filterd.dns.edns import Edns, EdnsFormatError
from filterd.dns.wire import BadQuery, Drop, Layout, Question, Rcode

IMPLEMENTATION = "native"
UDP_BATCH = 64

log = logging.getLogger("filterd.dns.server")

cdef enum:
    BATCH = 64
    RECV_SIZE = 65535
    MAX_NAME = 255
    OPT_TYPE = 41
    F_QR = 0x8000
    F_AA = 0x0400
    F_TC = 0x0200
    F_RD = 0x0100
    F_RA = 0x0080
    F_AD = 0x0020
    F_CD = 0x0010
    OUR_UDP_SIZE = 1232

cdef object FORMERR = Rcode.FORMERR
cdef object REFUSED = Rcode.REFUSED
cdef object NOTIMP = Rcode.NOTIMP
cdef object BADVERS = Rcode.BADVERS
cdef object _Question = Question
cdef object _Edns = Edns
cdef object _Layout = Layout
cdef dict _edns_plain = {}    # (udp_size, do) -> Edns without options: immutable, shared


# ---------------------------------------------------------------------------
# The question

cdef inline int _u16(const unsigned char* p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef Py_ssize_t _read_name(const unsigned char* data, Py_ssize_t n, Py_ssize_t pos) except -1:
    """wire.read_name: skip a (possibly compressed) name, pointers strictly backwards."""
    cdef Py_ssize_t end = -1
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t limit = pos
    cdef Py_ssize_t target
    cdef int length, kind
    while True:
        if pos >= n:
            raise BadQuery(FORMERR, "name runs past the message")
        length = data[pos]
        if length == 0:
            return pos + 1 if end < 0 else end
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise BadQuery(FORMERR, "truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= limit:
                raise BadQuery(FORMERR, "compression pointer loops or points forward")
            limit = target
            pos = target
            continue
        if kind:
            raise BadQuery(FORMERR, "unknown label type")
        total += length + 1
        if total > MAX_NAME:
            raise BadQuery(FORMERR, "name longer than 255 octets")
        pos += length + 1


cdef object _parse_opt(bytes raw, const unsigned char* data, Py_ssize_t n,
                       Py_ssize_t name_start, Py_ssize_t rr_fixed):
    """edns.parse_opt for an OPT RR whose owner starts at name_start, fixed part at rr_fixed."""
    cdef int udp_size, version, oflags, rdlen, code, olen
    cdef Py_ssize_t pos, end
    cdef bint do
    if rr_fixed != name_start + 1 or data[name_start] != 0:
        raise EdnsFormatError("OPT owner name must be the root")
    if rr_fixed + 10 > n:
        raise EdnsFormatError("truncated OPT record")
    udp_size = _u16(data + rr_fixed + 2)
    version = data[rr_fixed + 5]
    oflags = _u16(data + rr_fixed + 6)
    rdlen = _u16(data + rr_fixed + 8)
    pos = rr_fixed + 10
    end = pos + rdlen
    if end > n:
        raise EdnsFormatError("OPT RDATA runs past the message")
    do = (oflags & 0x8000) != 0
    if pos == end:
        key = (udp_size, version, do)
        hit = _edns_plain.get(key)
        if hit is None:
            hit = _Edns(udp_size=udp_size, version=version, do=do, options=())
            if len(_edns_plain) < 1024:
                _edns_plain[key] = hit
        return hit
    options = []
    while pos < end:
        if pos + 4 > end:
            raise EdnsFormatError("truncated EDNS option header")
        code = _u16(data + pos)
        olen = _u16(data + pos + 2)
        pos += 4
        if pos + olen > end:
            raise EdnsFormatError("EDNS option runs past the OPT RDATA")
        options.append((code, raw[pos:pos + olen]))
        pos += olen
    return _Edns(udp_size=udp_size, version=version, do=do, options=tuple(options))


cdef object _parse_additional(bytes raw, const unsigned char* data, Py_ssize_t n,
                              Py_ssize_t pos):
    cdef Py_ssize_t start = pos
    cdef Py_ssize_t fixed = _read_name(data, n, pos)
    cdef int rtype, rdlen
    if fixed + 10 > n:
        raise BadQuery(FORMERR, "additional record truncated")
    rtype = _u16(data + fixed)
    rdlen = _u16(data + fixed + 8)
    if fixed + 10 + rdlen > n:
        raise BadQuery(FORMERR, "additional record RDATA truncated")
    if rtype != OPT_TYPE:
        # We sign nothing and verify nothing (TSIG, SIG(0)): such a query is not for us.
        raise BadQuery(FORMERR, "additional record other than OPT")
    return _parse_opt(raw, data, n, start, fixed)


def parse_query(data):
    """Parse a query; raise Drop (no answer) or BadQuery (answer with its rcode)."""
    cdef bytes raw = data if type(data) is bytes else bytes(data)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef int qid, flags, qdcount, ancount, nscount, arcount, opcode, length, qtype, qclass
    cdef Py_ssize_t pos, end, total, w
    cdef unsigned char name[256]
    cdef unsigned char c
    if n < 12:
        raise Drop("shorter than a DNS header")
    qid = _u16(p)
    flags = _u16(p + 2)
    qdcount = _u16(p + 4)
    ancount = _u16(p + 6)
    nscount = _u16(p + 8)
    arcount = _u16(p + 10)
    if flags & F_QR:
        raise Drop("a response, not a query")
    if flags & F_TC:
        raise BadQuery(FORMERR, "a query with the TC bit")
    if flags & 0x7800:
        # NOTIFY is a real opcode we choose not to serve (as unbound does); the rest we lack.
        opcode = (flags >> 11) & 0xF
        raise BadQuery(REFUSED if opcode == 4 else NOTIMP, f"opcode {opcode} not implemented")
    if qdcount != 1:
        raise BadQuery(FORMERR, "QDCOUNT is not 1")
    if ancount or nscount:
        raise BadQuery(FORMERR, "a query with answer or authority records")
    if arcount > 1:
        raise BadQuery(FORMERR, "more than one additional record")
    pos = 12
    total = 0
    w = 0
    while True:
        if pos >= n:
            raise BadQuery(FORMERR, "question name runs past the message")
        length = p[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            # Nothing precedes the question to point at: a pointer here is garbage.
            raise BadQuery(FORMERR, "compressed or extended label in the question")
        end = pos + length
        total += length + 1
        if end > n or total > MAX_NAME - 1:
            raise BadQuery(FORMERR, "bad question name")
        if w:
            name[w] = 46   # "."
            w += 1
        while pos < end:
            c = p[pos]
            if 65 <= c <= 90:   # bytes.lower(): ASCII only
                c += 32
            name[w] = c
            w += 1
            pos += 1
    if pos + 4 > n:
        raise BadQuery(FORMERR, "question truncated")
    qtype = _u16(p + pos)
    qclass = _u16(p + pos + 2)
    pos += 4
    q = _Question(qid, flags, PyUnicode_DecodeLatin1(<char*>name, w, NULL), qtype, qclass,
                  raw[12:pos], None)
    if arcount:
        try:
            edns = _parse_additional(raw, p, n, pos)
        except BadQuery as exc:
            exc.question = q
            raise
        except EdnsFormatError as exc:
            raise BadQuery(FORMERR, str(exc), q) from None
        q.edns = edns
        if edns is not None and edns.version != 0:
            raise BadQuery(BADVERS, "EDNS version not supported", q)
    return q


# ---------------------------------------------------------------------------
# Upstream answers

cdef inline unsigned long _u32(const unsigned char* p) noexcept nogil:
    return (<unsigned long>p[0] << 24) | (<unsigned long>p[1] << 16) | (p[2] << 8) | p[3]


def scan_response(data):
    """Walk every record of a response; raise BadQuery(FORMERR) if it is malformed."""
    cdef bytes raw = data if type(data) is bytes else bytes(data)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef Py_ssize_t pos, start, fixed, opt_start = -1, opt_end = -1
    cdef int qd, an, ns, ar, section, count, k, rtype, rdlen, flags
    cdef int ext_rcode = 0
    cdef long long ttl, minimum, neg
    cdef long long min_ttl = -1, negative_ttl = -1
    cdef int kept[3]
    if n < 12:
        raise BadQuery(FORMERR, "response shorter than a header")
    lay = _Layout()
    flags = _u16(p + 2)
    qd = _u16(p + 4)
    an = _u16(p + 6)
    ns = _u16(p + 8)
    ar = _u16(p + 10)
    lay.id = _u16(p)
    lay.flags = flags
    pos = 12
    for k in range(qd):
        pos = _read_name(p, n, pos) + 4
        if pos > n:
            raise BadQuery(FORMERR, "question truncated")
    lay.question_end = pos
    kept[0] = kept[1] = kept[2] = 0
    offsets = []
    for section in range(3):
        count = an if section == 0 else (ns if section == 1 else ar)
        for k in range(count):
            start = pos
            fixed = _read_name(p, n, pos)
            if fixed + 10 > n:
                raise BadQuery(FORMERR, "record truncated")
            rtype = _u16(p + fixed)
            ttl = _u32(p + fixed + 4)
            rdlen = _u16(p + fixed + 8)
            pos = fixed + 10 + rdlen
            if pos > n:
                raise BadQuery(FORMERR, "RDATA truncated")
            if rtype == OPT_TYPE and section == 2:
                if opt_start >= 0:
                    raise BadQuery(FORMERR, "two OPT records")
                opt_start = start
                opt_end = pos
                ext_rcode = p[fixed + 4]
                continue
            kept[section] += 1
            if ttl > 0x7FFFFFFF:   # RFC 2181 8: treat as zero
                ttl = 0
            offsets.append(fixed + 4)
            if section < 2:
                min_ttl = ttl if min_ttl < 0 else (ttl if ttl < min_ttl else min_ttl)
            if section == 1 and rtype == 6 and rdlen >= 22:   # SOA
                minimum = _u32(p + pos - 4)
                neg = ttl if ttl < minimum else minimum
                negative_ttl = neg if negative_ttl < 0 else (
                    neg if neg < negative_ttl else negative_ttl)
    lay.ttl_offsets = offsets
    lay.opt_start = opt_start
    lay.opt_end = opt_end
    if min_ttl >= 0:
        lay.min_ttl = min_ttl
    if negative_ttl >= 0:
        lay.negative_ttl = negative_ttl
    lay.counts = (kept[0], kept[1], kept[2])
    lay.rcode = (ext_rcode << 4) | (flags & 0xF)
    return lay


def ttl_fields(data, lay):
    """The TTL offsets relative to the question's end and the TTLs (capped at 2^31 - 1)."""
    cdef bytes raw = data if type(data) is bytes else bytes(data)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef Py_ssize_t qend = lay.question_end
    cdef list where = list(lay.ttl_offsets)
    cdef Py_ssize_t i, k = len(where), off
    cdef unsigned long ttl
    cdef object o, t   # objects, not inferred C integers: PyTuple_SET_ITEM steals them
    cdef tuple offsets = PyTuple_New(k)
    cdef tuple ttls = PyTuple_New(k)
    for i in range(k):
        off = where[i]
        if off < 0 or off + 4 > n:
            raise IndexError("TTL offset outside the message")
        ttl = _u32(p + off)
        if ttl > 0x7FFFFFFF:
            ttl = 0x7FFFFFFF
        o = off - qend
        Py_INCREF(o)
        PyTuple_SET_ITEM(offsets, i, o)
        t = ttl
        Py_INCREF(t)
        PyTuple_SET_ITEM(ttls, i, t)
    return offsets, ttls


# ---------------------------------------------------------------------------
# Answers filterd assembles itself

cdef inline void _put16(unsigned char* p, unsigned int v) noexcept nogil:
    p[0] = (v >> 8) & 0xFF
    p[1] = v & 0xFF


cdef inline void _put_opt(unsigned char* p, bint do, int ext_rcode, Py_ssize_t olen) noexcept nogil:
    p[0] = 0
    _put16(p + 1, OPT_TYPE)
    _put16(p + 3, OUR_UDP_SIZE)
    p[5] = ext_rcode & 0xFF
    p[6] = 0
    p[7] = 0x80 if do else 0
    p[8] = 0
    _put16(p + 9, <unsigned int>olen)


def build_opt(do=False, ext_rcode=0, bytes options=b""):
    """An OPT RR (root owner, our UDP size) carrying `options` (already encoded)."""
    cdef Py_ssize_t olen = PyBytes_GET_SIZE(options)
    out = PyBytes_FromStringAndSize(NULL, 11 + olen)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    _put_opt(o, bool(do), ext_rcode, olen)
    if olen:
        memcpy(o + 11, PyBytes_AS_STRING(options), olen)
    return out


def opt_for(q, ext_rcode=0, bytes options=b""):
    """Our OPT record for an answer to `q`, or b"" when the client did not use EDNS."""
    edns = q.edns
    if edns is None:
        return b""
    return build_opt(edns.do, ext_rcode, options)


cdef inline void _header(unsigned char* o, int qid, int flags, int an, int ns, int ar) noexcept nogil:
    _put16(o, qid)
    _put16(o + 2, flags)
    _put16(o + 4, 1)
    _put16(o + 6, an)
    _put16(o + 8, ns)
    _put16(o + 10, ar)


def answer(q, int rcode, int an=0, int ns=0, bytes records=b"", bytes options=b"",
           int extra_flags=0):
    """Header, the client's question, `records` (an + ns of them) and our OPT if EDNS.

    Rcodes above 15 go into the OPT (RFC 6891); without EDNS they become FORMERR.
    `extra_flags` adds header bits (TC for a truncated answer).
    """
    cdef int ext = 0
    edns = q.edns
    if rcode > 15:
        if edns is None:
            rcode = 1
        else:
            ext = rcode >> 4
            rcode &= 0xF
    cdef bytes question = q.question
    cdef Py_ssize_t qlen = PyBytes_GET_SIZE(question)
    cdef Py_ssize_t rlen = PyBytes_GET_SIZE(records)
    cdef Py_ssize_t olen = PyBytes_GET_SIZE(options)
    cdef bint has_opt = edns is not None
    cdef Py_ssize_t size = 12 + qlen + rlen + ((11 + olen) if has_opt else 0)
    cdef int qflags = q.flags
    cdef int flags = F_QR | F_RA | (qflags & (F_RD | F_CD | 0x7800)) | (rcode & 0xF) | extra_flags
    out = PyBytes_FromStringAndSize(NULL, size)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    _header(o, q.id, flags & 0xFFFF, an, ns, 1 if has_opt else 0)
    memcpy(o + 12, PyBytes_AS_STRING(question), qlen)
    if rlen:
        memcpy(o + 12 + qlen, PyBytes_AS_STRING(records), rlen)
    if has_opt:
        _put_opt(o + 12 + qlen + rlen, bool(edns.do), ext, olen)
        if olen:
            memcpy(o + 23 + qlen + rlen, PyBytes_AS_STRING(options), olen)
    return out


# ---------------------------------------------------------------------------
# Cached answers

def body_at(entry, int age):
    """The entry's records with every TTL `age` seconds lower (never below 0)."""
    if age == entry.last_age:
        return entry.last_body
    cdef bytes body = entry.body
    cdef tuple offsets = entry.ttl_offsets
    cdef tuple ttls = entry.ttls
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t i, k = PyTuple_GET_SIZE(offsets)
    cdef Py_ssize_t off
    cdef long long ttl, left
    if PyTuple_GET_SIZE(ttls) != k:
        raise ValueError("zip() argument 2 is shorter or longer than argument 1")
    out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(body), n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    for i in range(k):
        off = <object>PyTuple_GET_ITEM(offsets, i)
        ttl = <object>PyTuple_GET_ITEM(ttls, i)
        left = ttl - age if ttl > age else 0
        if off < 0 or off + 4 > n or left > 0xFFFFFFFF:
            raise ValueError("TTL offset or value out of range")
        o[off] = (left >> 24) & 0xFF
        o[off + 1] = (left >> 16) & 0xFF
        o[off + 2] = (left >> 8) & 0xFF
        o[off + 3] = left & 0xFF
    entry.last_age = age
    entry.last_body = out
    return out


def render(entry, q, int age=0, Py_ssize_t limit=65535, *, body=None, bytes options=b""):
    """The answer for `q`: its ID and question, our OPT, TTLs aged; TC if over `limit`.

    `body` replaces the aged records (stale answers), `options` go in our OPT.
    """
    cdef int eflags = entry.flags
    cdef int qflags = q.flags
    cdef int flags = F_QR | F_RA | (qflags & (F_RD | F_CD)) | (eflags & 0xF)
    edns = q.edns
    cdef bint has_opt = edns is not None
    cdef bint do = has_opt and bool(edns.do)
    if eflags & F_AD and (do or qflags & F_AD):  # RFC 6840 5.8
        flags |= F_AD
    cdef tuple counts = entry.counts
    an, ns, ar = counts
    cdef bytes records = body_at(entry, age) if body is None else body
    cdef bytes question = q.question
    cdef Py_ssize_t qlen = PyBytes_GET_SIZE(question)
    cdef Py_ssize_t blen = PyBytes_GET_SIZE(records)
    cdef Py_ssize_t olen = PyBytes_GET_SIZE(options)
    cdef Py_ssize_t size = 12 + qlen + blen + ((11 + olen) if has_opt else 0)
    if size > limit:
        return answer(q, 0, 0, 0, b"", b"", F_TC)
    out = PyBytes_FromStringAndSize(NULL, size)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    _header(o, q.id, flags, an, ns, ar + (1 if has_opt else 0))
    memcpy(o + 12, PyBytes_AS_STRING(question), qlen)
    memcpy(o + 12 + qlen, PyBytes_AS_STRING(records), blen)
    if has_opt:
        _put_opt(o + 12 + qlen + blen, do, 0, olen)
        if olen:
            memcpy(o + 23 + qlen + blen, PyBytes_AS_STRING(options), olen)
    return out


# ---------------------------------------------------------------------------
# Two-generation maps: the answer memo and the verdict table

cdef class Recent:
    """A map of entries that live about a second: tuples whose first item is their expiry.

    At most 2 x max_entries entries are held: the bound is what keeps one-off names
    (random blocked names, cache misses) from costing memory nothing reuses.
    """

    cdef public double lifetime
    cdef public Py_ssize_t max_entries
    cdef public double rotate_at
    cdef dict _cur
    cdef dict _old
    cdef dict _dying

    def __init__(self, lifetime=1.0, max_entries=5_000):
        if lifetime < 0 or max_entries < 0:
            raise ValueError("memo lifetime and size must not be negative")
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._cur = {}
        self._old = {}
        self._dying = {}
        self.rotate_at = 0.0

    @property
    def enabled(self):
        return self.lifetime > 0 and self.max_entries > 0

    def __len__(self):
        return len(self._cur) + len(self._old)

    def clear(self):
        self._cur = {}
        self._old = {}
        self._dying = {}

    cdef inline object lookup(self, object key, double now):
        cdef PyObject* hit = PyDict_GetItem(self._cur, key)
        if hit is NULL:
            hit = PyDict_GetItem(self._old, key)
            if hit is NULL:
                return None
        if <double>(<object>PyTuple_GET_ITEM(<object>hit, 0)) > now:
            return <object>hit
        return None

    def get(self, key, double now):
        hit = self._cur.get(key)
        if hit is None:
            hit = self._old.get(key)
            if hit is None:
                return None
        return hit if hit[0] > now else None

    def put(self, key, entry, double now):
        cdef dict dying = self._dying
        cdef int i
        if dying:
            # Freed a few at a time: 5,000 entries freed at once (answers, decisions and
            # their queries) held the query path for 1-2 ms once a second.
            for i in range(4):
                if not dying:
                    break
                dying.popitem()
        if now >= self.rotate_at or PyDict_Size(self._cur) >= self.max_entries:
            # Nothing in the old generation outlives a lifetime: it is all expired now.
            self._dying = self._old
            self._old = self._cur
            self._cur = {}
            self.rotate_at = now + self.lifetime
        PyDict_SetItem(self._cur, key, entry)


cdef class AnswerMemo(Recent):
    """Whole UDP answers by (client address, query bytes after the ID): MemoEntry values."""


cdef class GroupTable:
    """Client address -> the id of its group, as the policy engine said: a table the
    resolver fills from `Engine.client_group` and clears with every new engine (a
    reload). Not a rule: what group an address is in is only ever the engine's answer.

    Bounded: when `max_entries` addresses are held, the next put starts it again.
    """

    cdef public Py_ssize_t max_entries
    cdef dict _map

    def __init__(self, max_entries=4096):
        if max_entries < 0:
            raise ValueError("group table size must not be negative")
        self.max_entries = max_entries
        self._map = {}

    def __len__(self):
        return len(self._map)

    def clear(self):
        self._map = {}

    cpdef object get(self, object ip):
        cdef PyObject* hit = PyDict_GetItem(self._map, ip)
        if hit is NULL:
            return None
        return <object>hit

    cpdef put(self, object ip, object group):
        if self.max_entries <= 0:
            return
        if PyDict_Size(self._map) >= self.max_entries:
            self._map = {}
        self._map[ip] = group


cdef enum:
    KIND_BLOCKED = 1   # filterd/dns/memo.py: what a memo entry's answer is
    KIND_CACHED = 2


cdef class Replay:
    """`Resolver.replay`: a memo hit's answer without its ID, counted and logged like any
    other answer; None if the client is over its rate limit (UDP: silence).

    Reads the resolver's stats, rate limit, cache and event sink at each call, so
    swapping one of them takes effect at once.
    """

    cdef public object resolver

    def __init__(self, resolver):
        self.resolver = resolver

    def __call__(self, hit, client_ip):
        return self.replay(hit, client_ip)

    cdef object replay(self, tuple hit, object client_ip):
        r = self.resolver
        cdef dict stats = r.stats
        stats["queries"] += 1
        limit = r.rate_limit
        if limit is not None and not limit.allow(client_ip):
            stats["rate_limited"] += 1
            return None   # as handle() does on UDP: silence
        kind = hit[2]
        out = hit[1]
        cdef Py_ssize_t start
        cdef long age
        if kind == KIND_BLOCKED:
            stats["blocked"] += 1
        elif kind == KIND_CACHED:
            cache = r.cache
            cache.hits += 1
            if PyTuple_GET_SIZE(hit) > 5:
                start = hit[7]
                if start:
                    # (..., entry, age, start, end): the records' TTLs aged to now, as
                    # Entry.render would give them (the memo keeps the answer a second).
                    entry = hit[5]
                    age = int(cache.clock() - entry.stored_at)
                    if age != hit[6]:
                        out = out[:start] + body_at(entry, age) + out[hit[8]:]
        r.events.record(hit[3], hit[4])
        return out


# ---------------------------------------------------------------------------
# The UDP loop

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    struct iovec:
        void* iov_base
        size_t iov_len
    struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int recvmmsg(int fd, mmsghdr* msgs, unsigned int vlen, int flags, void* timeout)
    int sendmmsg(int fd, mmsghdr* msgs, unsigned int vlen, int flags)
    int AF_INET
    int AF_INET6
    int MSG_DONTWAIT

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        unsigned int s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        unsigned int sin6_flowinfo
        unsigned int sin6_scope_id
    unsigned short ntohs(unsigned short)
    unsigned int ntohl(unsigned int)

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_MONOTONIC

cdef extern from "<netdb.h>" nogil:
    int getnameinfo(const sockaddr* sa, socklen_t salen, char* host, socklen_t hostlen,
                    char* serv, socklen_t servlen, int flags)
    int NI_NUMERICHOST
    int NI_MAXHOST

cdef extern from "<arpa/inet.h>" nogil:
    const char* inet_ntop(int af, const void* src, char* dst, socklen_t size)


def _log_failure(client):
    log.exception("query from %s failed", client)


cdef class UdpLoop:
    """Drains a non-blocking UDP socket: memo hits answered here, the rest by `handle`.

    recvmmsg reads up to UDP_BATCH datagrams in one system call and sendmmsg sends
    the answers made during the batch in one more; the wait itself is the event
    loop's epoll_wait, where the GIL is released. `handle(data, client_ip, False)`
    returns bytes (sent), None (nothing sent) or something pending, given to
    `later(result, addr)`. `replay(hit, client_ip)` counts and logs a memo hit and
    returns its answer without the ID (None: silence). `failed(client_ip)` is called
    inside the `except` when handle() raises.
    """

    cdef object sock
    cdef int fd
    cdef Recent memo
    cdef object handle
    cdef object replay
    cdef Replay _replay   # the same, when it is this module's: called without Python
    cdef object later
    cdef object failed
    cdef dict _ips
    cdef unsigned char* _bufs
    cdef mmsghdr* _rmsgs
    cdef iovec* _riov
    cdef sockaddr_storage* _addrs
    cdef mmsghdr* _smsgs
    cdef iovec* _siov

    def __cinit__(self, *args, **kwargs):
        self._bufs = <unsigned char*>calloc(BATCH, RECV_SIZE)
        self._rmsgs = <mmsghdr*>calloc(BATCH, sizeof(mmsghdr))
        self._riov = <iovec*>calloc(BATCH, sizeof(iovec))
        self._addrs = <sockaddr_storage*>calloc(BATCH, sizeof(sockaddr_storage))
        self._smsgs = <mmsghdr*>calloc(BATCH, sizeof(mmsghdr))
        self._siov = <iovec*>calloc(BATCH, sizeof(iovec))
        if (self._bufs is NULL or self._rmsgs is NULL or self._riov is NULL
                or self._addrs is NULL or self._smsgs is NULL or self._siov is NULL):
            raise MemoryError()

    def __dealloc__(self):
        free(self._bufs)
        free(self._rmsgs)
        free(self._riov)
        free(self._addrs)
        free(self._smsgs)
        free(self._siov)

    def __init__(self, sock, memo, handle, replay, later, failed=None):
        self.sock = sock
        self.fd = sock.fileno()
        self.memo = memo if memo is not None and memo.enabled else None
        self.handle = handle
        self.replay = replay
        self._replay = replay if type(replay) is Replay else None
        self.later = later
        self.failed = failed if failed is not None else _log_failure
        self._ips = {}

    cdef object _client(self, sockaddr_storage* sa, socklen_t salen):
        """The client's address as the socket module writes it (cached for IPv4)."""
        cdef char host[1025]
        cdef sockaddr_in* v4
        cdef PyObject* hit
        if sa.ss_family == AF_INET:
            v4 = <sockaddr_in*>sa
            key = v4.sin_addr.s_addr
            hit = PyDict_GetItem(self._ips, key)
            if hit is not NULL:
                return <object>hit
            inet_ntop(AF_INET, &v4.sin_addr, host, sizeof(host))
            ip = host.decode("ascii")
            if PyDict_Size(self._ips) >= 4096:
                self._ips = {}
            self._ips[key] = ip
            return ip
        if getnameinfo(<sockaddr*>sa, salen, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0:
            return ""
        return host.decode("ascii")

    cdef object _addr(self, sockaddr_storage* sa, object ip):
        cdef sockaddr_in6* v6
        if sa.ss_family == AF_INET6:
            v6 = <sockaddr_in6*>sa
            return (ip, ntohs(v6.sin6_port), ntohl(v6.sin6_flowinfo), v6.sin6_scope_id)
        return (ip, ntohs((<sockaddr_in*>sa).sin_port))

    def readable(self):
        """The event loop's reader callback: drain with one clock read for the batch
        (CLOCK_MONOTONIC, the clock of time.monotonic())."""
        cdef timespec ts
        clock_gettime(CLOCK_MONOTONIC, &ts)
        self.drain(ts.tv_sec + ts.tv_nsec * 1e-9)

    def drain(self, double now):
        """Read up to UDP_BATCH datagrams (one clock read for the batch); the count read."""
        cdef int got = 0, n, i, k, r, want
        cdef unsigned int size
        cdef unsigned char* buf
        cdef list outs
        cdef Recent memo = self.memo
        while got < BATCH:
            want = BATCH - got
            for i in range(want):
                self._riov[i].iov_base = self._bufs + <size_t>i * RECV_SIZE
                self._riov[i].iov_len = RECV_SIZE
                memset(&self._rmsgs[i].msg_hdr, 0, sizeof(msghdr))
                self._rmsgs[i].msg_hdr.msg_name = &self._addrs[i]
                self._rmsgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
                self._rmsgs[i].msg_hdr.msg_iov = &self._riov[i]
                self._rmsgs[i].msg_hdr.msg_iovlen = 1
            n = recvmmsg(self.fd, self._rmsgs, want, MSG_DONTWAIT, NULL)
            if n < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:   # == EWOULDBLOCK on Linux
                    break
                got += 1   # an ICMP error queued on the socket: about a client, not for us
                continue
            got += n
            outs = []
            k = 0
            for i in range(n):
                buf = self._bufs + <size_t>i * RECV_SIZE
                size = self._rmsgs[i].msg_len
                ip = self._client(&self._addrs[i], self._rmsgs[i].msg_hdr.msg_namelen)
                if memo is not None and size >= 2:
                    # The same bytes from the same client a moment ago: the same answer.
                    hit = memo.lookup((ip, PyBytes_FromStringAndSize(<char*>buf + 2, size - 2)),
                                      now)
                    if hit is not None:
                        if self._replay is not None:
                            tail = self._replay.replay(hit, ip)
                        else:
                            tail = self.replay(hit, ip)
                        if tail is not None:
                            out = PyBytes_FromStringAndSize(NULL, 2 + PyBytes_GET_SIZE(tail))
                            memcpy(PyBytes_AS_STRING(out), buf, 2)
                            memcpy(PyBytes_AS_STRING(out) + 2, PyBytes_AS_STRING(tail),
                                   PyBytes_GET_SIZE(tail))
                            self._queue(k, i, out)
                            outs.append(out)
                            k += 1
                        continue
                data = PyBytes_FromStringAndSize(<char*>buf, size)
                try:
                    res = self.handle(data, ip, False)
                except Exception:
                    self.failed(ip)   # inside the except: it can log the traceback
                    continue
                if res is None:
                    continue
                if type(res) is bytes:
                    self._queue(k, i, res)
                    outs.append(res)
                    k += 1
                else:
                    self.later(res, self._addr(&self._addrs[i], ip))
            i = 0
            while i < k:
                r = sendmmsg(self.fd, self._smsgs + i, k - i, 0)
                if r < 0:
                    if errno == EINTR:
                        continue
                    i += 1   # send buffer full or client gone: UDP, the client retries
                else:
                    i += r
            if n < want:
                break   # drained: the next datagram wakes the loop again
        return got

    cdef inline void _queue(self, int k, int i, bytes out):
        self._siov[k].iov_base = PyBytes_AS_STRING(out)
        self._siov[k].iov_len = PyBytes_GET_SIZE(out)
        memset(&self._smsgs[k].msg_hdr, 0, sizeof(msghdr))
        self._smsgs[k].msg_hdr.msg_name = &self._addrs[i]
        self._smsgs[k].msg_hdr.msg_namelen = self._rmsgs[i].msg_hdr.msg_namelen
        self._smsgs[k].msg_hdr.msg_iov = &self._siov[k]
        self._smsgs[k].msg_hdr.msg_iovlen = 1
