"""The listeners against a real unbound upstream: UDP, TCP pipelining, limits, bad input.

The malformed-packet corpus is sent to unbound and to filterd; both must agree on
whether to answer and with which rcode, except where filterd is deliberately stricter
(listed in DIFFERENCES with the reason).
"""

import contextlib
import socket
import struct
import time

import dns.message
import dns.query
import pytest
from corpus import CORPUS, ask_udp, assert_like_unbound, frame
from corpus import read_frames as read_raw_frames
from dnshelpers import FakeEngine, ServerThread, Unbound

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


@pytest.fixture(scope="module")
def server(unbound):
    with ServerThread(FakeEngine(), [unbound.address], tcp_idle_timeout=1.0) as s:
        yield s


def good(server):
    q = dns.message.make_query("allowed.test", "A")
    r = dns.query.udp(q, server.address[0], port=server.address[1], timeout=2)
    assert r.answer[0][0].address == "192.0.2.10"


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_malformed_corpus_like_unbound(case, unbound, server):
    data = CORPUS[case]
    ref = ask_udp(unbound.address, data)
    ours = ask_udp(server.address, data)
    assert_like_unbound(case, ref, ours)
    good(server)   # and the next good query is answered at once


def test_udp_and_tcp_answers(server):
    q = dns.message.make_query("allowed.test", "A")
    tcp = dns.query.tcp(q, server.address[0], port=server.address[1], timeout=2)
    assert tcp.answer[0][0].address == "192.0.2.10"
    blocked = dns.query.udp(dns.message.make_query("blocked.test", "A"), server.address[0],
                            port=server.address[1], timeout=2)
    assert blocked.rcode() == dns.rcode.NXDOMAIN


def test_large_answer_truncated_on_udp_complete_on_tcp(server):
    q = dns.message.make_query("big.test", "TXT", use_edns=0, payload=1232)
    udp = dns.query.udp(q, server.address[0], port=server.address[1], timeout=2,
                        ignore_trailing=True)
    assert udp.flags & dns.flags.TC
    tcp = dns.query.tcp(q, server.address[0], port=server.address[1], timeout=2)
    assert len(tcp.answer[0]) == 9


def read_frames(sock, n, timeout=3.0):
    return [dns.message.from_wire(m) for m in read_raw_frames(sock, n, timeout)]


def test_tcp_pipelining_many_queries_one_write(server):
    names = ["allowed.test", "blocked.test", "www.allowed.test", "nothere.test", "other.test"]
    msgs = []
    for i, n in enumerate(names * 4):
        m = dns.message.make_query(n, "A")
        m.id = i
        msgs.append(m)
    with socket.create_connection(server.address, timeout=3) as s:
        s.sendall(b"".join(frame(m.to_wire()) for m in msgs))
        answers = read_frames(s, len(msgs))
    assert sorted(a.id for a in answers) == list(range(len(msgs)))
    by_id = {a.id: a for a in answers}
    assert by_id[1].rcode() == dns.rcode.NXDOMAIN and by_id[0].answer


def closed(sock, timeout=5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65535):
            pass
        return True
    except (TimeoutError, ConnectionResetError):
        return False


def test_tcp_frame_shorter_than_header_closes(server):
    with socket.create_connection(server.address, timeout=3) as s:
        s.sendall(b"\x00\x05hello")
        assert closed(s)
    good(server)


def test_tcp_truncated_frame_then_eof_gets_no_answer(server):
    q = dns.message.make_query("allowed.test", "A").to_wire()
    with socket.create_connection(server.address, timeout=3) as s:
        s.sendall(struct.pack("!H", len(q) + 50) + q)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(3)
        assert s.recv(100) == b""
    good(server)


def test_tcp_idle_and_stalled_frames_time_out(server):
    with socket.create_connection(server.address, timeout=3) as s:
        s.sendall(b"\xff\xff" + b"\x00" * 100)   # an oversized frame that never completes
        assert closed(s)   # the 1 s idle timeout closes it; 5 s bound
    good(server)


def test_tcp_garbage_frame_answered_formerr_then_next(server):
    q = dns.message.make_query("allowed.test", "A")
    q.id = 7
    with socket.create_connection(server.address, timeout=3) as s:
        s.sendall(frame(CORPUS["compression_loop"]) + frame(q.to_wire()))
        s.settimeout(3)
        data = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(data) < 14:
            data += s.recv(65535)
        size = struct.unpack("!H", data[:2])[0]
        assert struct.unpack("!H", data[4:6])[0] & 0xF == 1    # FORMERR first
        rest = data[2 + size:]
        while len(rest) < 2 or len(rest) < 2 + struct.unpack("!H", rest[:2])[0]:
            rest += s.recv(65535)
        assert dns.message.from_wire(rest[2:]).id == 7


def test_ipv6_listener(unbound):
    with ServerThread(FakeEngine(), [unbound.address], listen=(("::1", 0),)) as s6:
        host, port = s6.address
        q = dns.message.make_query("allowed.test", "A")
        assert dns.query.udp(q, host, port=port, timeout=2).answer[0][0].address == "192.0.2.10"
        assert dns.query.tcp(q, host, port=port, timeout=2).answer
        blocked = dns.message.make_query("blocked.test", "AAAA")
        assert dns.query.udp(blocked, host, port=port, timeout=2).rcode() == dns.rcode.NXDOMAIN


def _ask_raw(address, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(data, address)
        return s.recv(65535)


def test_repeated_query_answered_again_from_the_memo(unbound):
    """The same bytes from the same client: the same answer with the new ID, counted and logged."""
    events = []

    class Events:
        def record(self, decision, query):
            events.append((decision.action, query.name))

    engine = FakeEngine()
    with ServerThread(engine, [unbound.address], events=Events()) as s:
        for name in ("blocked.test", "allowed.test"):
            q = dns.message.make_query(name, "A", use_edns=0)
            first = q.to_wire()
            q.id = (q.id + 1) & 0xFFFF
            again = q.to_wire()
            a1 = _ask_raw(s.address, first)
            decided = len(engine.queries)
            a2 = _ask_raw(s.address, again)
            assert a2[:2] == again[:2] and a2[2:] == a1[2:]
            assert len(engine.queries) == decided   # not decided again: sent from the memo
        assert len(s.resolver.memo) == 2
        assert s.resolver.stats["queries"] == 4 and s.resolver.stats["blocked"] == 2
        assert [n for _, n in events] == ["blocked.test"] * 2 + ["allowed.test"] * 2
        # Another client, or other bytes (here the DO bit), are decided and answered anew.
        q = dns.message.make_query("blocked.test", "A", use_edns=0, want_dnssec=True)
        assert dns.message.from_wire(_ask_raw(s.address, q.to_wire())).rcode() == 3
        assert len(s.resolver.memo) == 3   # its own entry (the decision itself is reused)
        # A reload (a new engine) forgets every remembered answer.
        s.resolver.engine = engine
        assert len(s.resolver.memo) == 0


def test_memo_answer_never_outlives_its_second(unbound):
    engine = FakeEngine()
    with ServerThread(engine, [unbound.address], decision_ttl=0.2) as s:
        q = dns.message.make_query("blocked.test", "A").to_wire()
        _ask_raw(s.address, q)
        time.sleep(0.3)
        _ask_raw(s.address, q)
        assert len(engine.queries) == 2


def test_rate_limit_applies_to_answers_from_the_memo(unbound):
    from filterd.dns.ratelimit import RateLimiter

    with ServerThread(FakeEngine(), [unbound.address],
                      rate_limit=RateLimiter(5, burst=5)) as s:
        q = dns.message.make_query("blocked.test", "A").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(0.5)
            for _ in range(40):   # identical bytes: all but the first would be memo hits
                c.sendto(q, s.address)
            answered = 0
            with contextlib.suppress(TimeoutError):
                while True:
                    c.recv(512)
                    answered += 1
        assert 1 <= answered <= 10
        assert s.resolver.stats["rate_limited"] >= 30
