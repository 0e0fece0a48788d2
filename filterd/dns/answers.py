"""Answers filterd makes itself: blocks, RFC 8482 answers to ANY, built from bytes.

A blocked name is answered per the group's block mode: the appliance's own
address (HTTP then lands on the block page), NXDOMAIN, null (0.0.0.0 / ::) or
NODATA, with a short TTL and an Extended DNS Error (RFC 8914) naming why.
"""

from __future__ import annotations

import functools
import ipaddress
import struct

from filterd.dns import fastpath, wire
from filterd.dns.edns import ede_option
from filterd.dns.wire import TYPE_A, TYPE_AAAA, TYPE_HINFO, TYPE_SOA, Question, Rcode
from filterd.policy.decision import BlockMode, Decision, Reason
from filterd.words.explain import Words

EDE_BLOCKED = 15    # RFC 8914: blocked by the operator's policy
EDE_FILTERED = 17   # RFC 8914: filtered as the client's (here: age tier's) policy asks
EDE_NO_REACHABLE_AUTHORITY = 22

# The age tier's category filters are "Filtered"; everything else the school blocks is "Blocked".
_FILTERED_REASONS = frozenset({Reason.CATEGORY, Reason.SCHEDULED_CATEGORY})

_HINFO = wire.rr(TYPE_HINFO, 3600, b"\x07RFC8482\x00")
answer = fastpath.answer   # header, question, records, our OPT (native or its twin)

_EDE_MEMO_MAX = 1024   # cells (reason, category, group): a school has a few dozen

_SOA_NAMES = wire.encode_name("filterd.invalid") + wire.encode_name("hostmaster.filterd.invalid")


def ede_for(decision: Decision, words: Words | None = None) -> tuple[int, str]:
    """The EDE code and its text, in the explanation module's words (not internal codes)."""
    code = EDE_FILTERED if decision.reason in _FILTERED_REASONS else EDE_BLOCKED
    return code, (words or _shipped_words()).ede(decision)


@functools.cache
def _shipped_words() -> Words:
    return Words()


class BlockAnswers:
    """Builds block answers; immutable once made (a reload makes a new one)."""

    _words: Words | None = None

    @property
    def words(self) -> Words | None:
        """The running engine's words (its catalog and group names) for the EDE text; the
        resolver sets it with each engine it is given (which drops the EDE options made
        with the last one)."""
        return self._words

    @words.setter
    def words(self, words: Words | None) -> None:
        self._words = words
        self._ede = {}

    def __init__(self, ttl: int = 10, ipv4: str | None = None, ipv6: str | None = None) -> None:
        if not 0 <= ttl <= 86400:
            raise ValueError(f"block TTL {ttl} out of range 0..86400")
        self.ttl = ttl
        self._ip4_text, self._ip6_text = ipv4, ipv6
        self.ipv4 = ipaddress.IPv4Address(ipv4).packed if ipv4 else None
        self.ipv6 = ipaddress.IPv6Address(ipv6).packed if ipv6 else None
        self._soa = wire.rr(TYPE_SOA, ttl, _SOA_NAMES + struct.pack("!IIIII", 1, 3600, 600,
                                                                     86400, ttl))
        self._null4 = wire.rr(TYPE_A, ttl, bytes(4))
        self._null6 = wire.rr(TYPE_AAAA, ttl, bytes(16))
        self._addr4 = wire.rr(TYPE_A, ttl, self.ipv4) if self.ipv4 else None
        self._addr6 = wire.rr(TYPE_AAAA, ttl, self.ipv6) if self.ipv6 else None
        # The EDE option of a block, by everything its text is made of: the same few
        # (reason, category, group) cells answer every blocked name, and the words cost
        # more than the answer around them.
        self._ede: dict[tuple, bytes] = {}

    def block(self, q: Question, decision: Decision, cap: int | None = None) -> bytes:
        """The block answer; `cap`: seconds until the verdict changes (TTL no longer)."""
        if cap is not None and cap < self.ttl:
            capped = BlockAnswers(cap, self._ip4_text, self._ip6_text)
            capped.words = self.words
            return capped.block(q, decision)
        mode = decision.block_mode or BlockMode.NXDOMAIN
        record = None
        if mode is BlockMode.ADDRESS:
            # No appliance address of that family: NODATA, so the client uses the other one.
            record = self._addr4 if q.qtype == TYPE_A else (
                self._addr6 if q.qtype == TYPE_AAAA else None)
        elif mode is BlockMode.NULL:
            record = self._null4 if q.qtype == TYPE_A else (
                self._null6 if q.qtype == TYPE_AAAA else None)
        options = b""
        if q.edns is not None:
            key = (decision.reason, decision.category, decision.group, decision.group_label,
                   decision.group_label_en)
            options = self._ede.get(key)
            if options is None:
                code, text = ede_for(decision, self._words)
                options = ede_option(code, text)
                if len(self._ede) < _EDE_MEMO_MAX:
                    self._ede[key] = options
        if record is not None:
            return answer(q, Rcode.NOERROR, 1, 0, record, options)
        rcode = Rcode.NXDOMAIN if mode is BlockMode.NXDOMAIN else Rcode.NOERROR
        # An SOA lets stub resolvers cache the negative answer for the block TTL (RFC 2308).
        return answer(q, rcode, 0, 1, self._soa, options)

    def any_answer(self, q: Question) -> bytes:
        """RFC 8482: answer ANY with one synthesized HINFO instead of everything."""
        return answer(q, Rcode.NOERROR, 1, 0, _HINFO)

    def servfail(self, q: Question, text: str = "no upstream answered") -> bytes:
        options = ede_option(EDE_NO_REACHABLE_AUTHORITY, text) if q.edns is not None else b""
        return answer(q, Rcode.SERVFAIL, 0, 0, b"", options)
