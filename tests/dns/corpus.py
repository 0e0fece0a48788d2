"""Malformed and odd packets for the DNS servers, and how unbound answers them.

Shared by the listener tests (tests/dns/test_server.py) and the daemon tests
(tests/test_daemon.py): both send every packet to unbound and to filterd and
compare, unbound being the reference.
"""

import socket
import struct

import dns.message


def hdr(qid=0x1111, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


Q = b"\x07allowed\x04test\x00\x00\x01\x00\x01"
OPT0 = b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 0)
RR_A = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x10\x00\x04\x01\x02\x03\x04"

CORPUS = {
    "short": b"\x12\x34\x01",
    "header_only": hdr(qd=0),
    "response": hdr(flags=0x8180) + Q,
    "qdcount0": hdr(qd=0) + Q,
    "qdcount2": hdr(qd=2) + Q + Q,
    "opcode_update": hdr(flags=0x0100 | (5 << 11)) + Q,
    "opcode_unassigned": hdr(flags=0x0100 | (3 << 11)) + Q,
    "opcode_notify": hdr(flags=4 << 11) + Q,
    "opcode_iquery": hdr(flags=1 << 11) + Q,
    "opcode_status": hdr(flags=2 << 11) + Q,
    "compression_loop": hdr() + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer_forward": hdr() + b"\xc0\x20\x00\x01\x00\x01" + b"\x00" * 20,
    "question_truncated": hdr() + b"\x07allowed\x04test\x00\x00",
    "label_past_end": hdr() + b"\x3fabc",
    "name_too_long": hdr() + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",
    "edns_version_1": hdr(ar=1) + Q + b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 1, 0, 0),
    "opt_bad_option_length": hdr(ar=1) + Q + b"\x00"
    + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 4) + b"\x00\x08\x00\x09",
    "opt_rdlen_past_end": hdr(ar=1) + Q + b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 40),
    "two_opts": hdr(ar=2) + Q + OPT0 + OPT0,
    "opt_owner_not_root": hdr(ar=1) + Q + b"\x01x\x00"
    + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 0),
    "ancount_1": hdr(an=1) + Q + RR_A,
    "nscount_1": hdr(ns=1) + Q + RR_A,
    "additional_not_opt": hdr(ar=1) + Q + b"\x00" + RR_A[2:],
    "tc_bit_in_query": hdr(flags=0x0300) + Q,
    "any": hdr() + b"\x07allowed\x04test\x00\x00\xff\x00\x01",
    "axfr": hdr() + b"\x07allowed\x04test\x00\x00\xfc\x00\x01",
    "qtype_opt": hdr() + b"\x07allowed\x04test\x00\x00\x29\x00\x01",
    "chaos_version_bind": hdr() + b"\x07version\x04bind\x00\x00\x10\x00\x03",
    "trailing_garbage": hdr() + Q + b"garbage",
    "garbage": bytes(range(12, 60)),
}

# Where filterd answers differently from unbound on purpose.
DIFFERENCES = {
    # RFC 6891 6.1.2 / the issue: a malformed OPT is FORMERR; unbound ignores the bad option.
    "opt_bad_option_length": ((0,), (1,)),
    # filterd does not reveal its version and serves only class IN.
    "chaos_version_bind": ((0,), (5,)),
}


def ask_udp(addr, data, timeout=1.0):
    """(rcode incl. extended, answered) or None when no answer came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, addr)
        try:
            r = s.recv(65535)
        except TimeoutError:
            return None
    rcode = struct.unpack("!H", r[2:4])[0] & 0xF
    try:
        msg = dns.message.from_wire(r)
        rcode = msg.rcode()
    except Exception:
        pass
    return rcode


def assert_like_unbound(case: str, ref: object, ours: object) -> None:
    """filterd answers a corpus packet as unbound does, or as DIFFERENCES says it may."""
    if case in DIFFERENCES:
        theirs_expected, ours_expected = DIFFERENCES[case]
        assert ref in theirs_expected and ours in ours_expected, (case, ref, ours)
    else:
        assert ours == ref, f"{case}: unbound {ref}, filterd {ours}"


def frame(msg: bytes) -> bytes:
    """A DNS message as a TCP frame (RFC 1035 4.2.2: two-byte length first)."""
    return struct.pack("!H", len(msg)) + msg


def read_frames(sock: socket.socket, n: int, timeout: float = 5.0) -> list[bytes]:
    """Up to `n` whole TCP frames' payloads, fewer if the server closes first."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        chunk = sock.recv(65535)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
            size = struct.unpack("!H", buf[:2])[0]
            out.append(buf[2:2 + size])
            buf = buf[2 + size:]
    return out
