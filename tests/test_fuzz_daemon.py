"""A bounded mutation fuzz of the running daemon's DNS listener, UDP and TCP.

Seeded by the malformed-packet corpus (tests/dns/corpus.py) and a few good queries.
After every round the daemon must still be up and answer real queries correctly;
whatever it answered to the mutants must be a response to that query (QR set, same
ID); and its log must hold no traceback. FILTERD_FUZZ_SEED replays a run,
FILTERD_FUZZ_SCALE=10 makes it ten times longer.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import sys
import time
from pathlib import Path

import dns.message
import dns.rcode
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
import contextlib

from corpus import CORPUS, frame
from dnshelpers import Unbound

from tests.faults import TRACEBACK, rss_kb
from tests.fuzz import SCALE, SEED, mutate
from tests.test_daemon import Daemon

pytestmark = pytest.mark.integration

UDP_CASES = int(4000 * SCALE)
TCP_CONNECTIONS = int(120 * SCALE)


def seeds() -> list[bytes]:
    good = [dns.message.make_query(n, t, use_edns=e).to_wire()
            for n, t, e in [("allowed.test", "A", 0), ("blocked.test", "AAAA", False),
                            ("www.google.com", "A", 0), ("big.test", "TXT", 0),
                            ("pornhub.com", "HTTPS", 0), ("use-application-dns.net", "A", 0)]]
    return good + list(CORPUS.values())


def still_right(daemon: Daemon) -> None:
    """Real queries, over both transports, get the right answers."""
    for tcp in (False, True):
        r = daemon.ask("allowed.test", tcp=tcp)
        assert [a.address for rr in r.answer for a in rr] == ["192.0.2.10"], r
        assert daemon.ask("blocked.test", tcp=tcp).rcode() == dns.rcode.NXDOMAIN
    assert daemon.proc.poll() is None


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    unbound = Unbound(tmp_path_factory.mktemp("unbound")).start()
    d = Daemon(tmp_path_factory.mktemp("filterd"), unbound.address, flush_interval=0.5).start()
    yield d
    d.stop()
    unbound.stop()


def test_udp_mutants(target):
    rng = random.Random(SEED)
    pool = seeds()
    rss0 = rss_kb(target.proc.pid)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(target.address)
    sock.setblocking(False)
    sent: dict[int, bytes] = {}
    bad = []

    def drain(wait: float) -> None:
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                return
            try:
                r = sock.recv(65535)
            except OSError:
                continue
            qid = struct.unpack_from("!H", r)[0] if len(r) >= 2 else -1
            if len(r) < 12 or not r[2] & 0x80 or qid not in sent:
                bad.append((sent.get(qid), r))

    for i in range(UDP_CASES):
        m = mutate(rng, rng.choice(pool), pool)
        if len(m) >= 2:
            qid = i & 0xFFFF
            m = struct.pack("!H", qid) + m[2:]
            sent[qid] = m
        with contextlib.suppress(OSError):
            sock.send(m)
        if i % 200 == 199:
            drain(0.05)
        if i % 1000 == 999:
            drain(0.5)
            still_right(target)
    drain(1.0)
    sock.close()
    assert not bad, f"{len(bad)} answers that are not responses to their query: {bad[:3]}"
    still_right(target)
    log = target.logtext()
    assert TRACEBACK not in log, log[-3000:]
    assert (rss_kb(target.proc.pid) - rss0) / 1024 < 30


def test_tcp_mutants(target):
    rng = random.Random(SEED + 1)
    pool = seeds()
    bad = []
    for c in range(TCP_CONNECTIONS):
        s = socket.create_connection(target.address, timeout=2)
        try:
            data = b""
            for _ in range(rng.randint(1, 12)):
                m = mutate(rng, rng.choice(pool), pool)
                kind = rng.randrange(10)
                if kind == 0:     # a length that lies
                    data += struct.pack("!H", rng.randrange(65536)) + m
                elif kind == 1:   # raw bytes, no framing
                    data += m
                else:
                    data += frame(m)
            if rng.randrange(4) == 0:   # cut mid-frame
                data = data[: rng.randint(0, len(data))]
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            buf = b""
            s.settimeout(1.5)
            while True:
                try:
                    chunk = s.recv(65535)
                except (TimeoutError, ConnectionResetError):
                    break
                if not chunk:
                    break
                buf += chunk
            while len(buf) >= 2:
                size = struct.unpack("!H", buf[:2])[0]
                msg, buf = buf[2:2 + size], buf[2 + size:]
                if len(msg) < 12 or not msg[2] & 0x80:
                    bad.append(msg)
        except OSError:
            pass
        finally:
            s.close()
        if c % 40 == 39:
            still_right(target)
    assert not bad, bad[:3]
    still_right(target)
    log = target.logtext()
    assert TRACEBACK not in log, log[-3000:]
