"""The compiled DNS fast path and its pure-Python twin: chosen at import, same bytes out.

- the suite's install compiles filterd/dns/_speedups.pyx and the daemon picks it;
  FILTERD_PUREPYTHON=1 forces the twin, and `filterd doctor` says which one runs;
- a differential fuzz (hypothesis) sends the same packets, the malformed corpus and
  mutations of it, through both and compares every byte out: the parser (or the
  error it raises), the answers assembled from a question, cached answers rendered
  with aged TTLs, the two-generation maps, and the UDP loop over real sockets;
- the whole DNS suite runs a second time on the twin (test_pure_twin_passes_the_dns_suite).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from corpus import CORPUS, hdr
from dnslib import AAAA, QTYPE, RR, SOA, A, DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filterd.dns import _pure, fastpath, wire
from filterd.dns.cache import Entry

REPO = Path(__file__).resolve().parents[2]
FORCED_PURE = os.environ.get("FILTERD_PUREPYTHON", "") not in ("", "0")

try:
    from filterd.dns import _speedups
except ImportError as exc:   # the suite's install builds it: its absence is a failure below
    _speedups = None
    _WHY = str(exc)

IMPLS = [_pure, _speedups]


def native():
    if _speedups is None:
        pytest.fail(f"filterd/dns/_speedups was not compiled ({_WHY}): "
                    "install gcc, libc6-dev and python3-dev, then pip install -e .")
    return _speedups


# -- selection -------------------------------------------------------------------------------


def test_native_is_built_and_chosen_unless_forced():
    native()
    if FORCED_PURE:
        assert fastpath.IMPLEMENTATION == "pure"
        assert fastpath.MODULE == "filterd.dns._pure"
        assert "FILTERD_PUREPYTHON" in fastpath.REASON
    else:
        assert fastpath.IMPLEMENTATION == "native"
        assert fastpath.MODULE == "filterd.dns._speedups"
    # Everything on the query path uses the chosen one.
    from filterd.dns import memo, resolver

    assert wire.parse_query is fastpath.parse_query
    assert resolver._parse_query is fastpath.parse_query
    assert wire.scan_response is fastpath.scan_response
    assert memo.AnswerMemo is fastpath.AnswerMemo
    assert Entry.render is fastpath.render


def _describe(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", "import json; from filterd.dns import fastpath; "
         "print(json.dumps(fastpath.describe()))"],
        env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=60)
    import json

    return json.loads(out.stdout)


def test_purepython_forces_the_twin_and_doctor_says_so(tmp_path):
    native()
    assert _describe({"FILTERD_PUREPYTHON": "1"})["implementation"] == "pure"
    assert _describe({"FILTERD_PUREPYTHON": "0"})["implementation"] == "native"
    env = {**os.environ, "FILTERD_PUREPYTHON": "1"}
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {tmp_path}\n")
    skip = [a for n in ("ports", "upstreams", "clock", "lists", "disk", "ca", "office", "sync",
                        "rules") for a in ("--skip", n)]
    for forced, want in (("1", "pure-Python twin (FILTERD_PUREPYTHON is set)"),
                         ("", "native (filterd.dns._speedups, compiled)")):
        env["FILTERD_PUREPYTHON"] = forced
        out = subprocess.run([sys.executable, "-m", "filterd", "doctor", "--config", str(cfg),
                              *skip], env=env, capture_output=True, text=True, timeout=60)
        assert want in out.stdout, out.stdout + out.stderr


def test_doctor_warns_when_the_extension_is_missing(monkeypatch):
    from filterd import doctor

    monkeypatch.delenv("FILTERD_PUREPYTHON", raising=False)
    monkeypatch.setattr(fastpath, "IMPLEMENTATION", "pure")
    monkeypatch.setattr(fastpath, "REASON", "compiled extension not available (No module)")
    check = doctor.check_fastpath()
    assert check.status is doctor.Status.WARN
    assert "python3-dev" in check.fix and "not available" in check.detail


def test_install_without_a_compiler_runs_the_twin(tmp_path):
    """setup.py's optional build: a failing compiler leaves a working install on the twin."""
    env = {**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"}
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib",
                          str(tmp_path / "lib"), "--build-temp", str(tmp_path / "tmp")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "was NOT compiled" in out.stderr
    assert not list((tmp_path / "lib").rglob("_speedups*.so"))


# -- the differential fuzz -------------------------------------------------------------------

SEEDS = sorted(set(CORPUS.values()))
LABEL = st.binary(min_size=1, max_size=12).filter(lambda b: True) | st.sampled_from(
    [b"www", b"Example", b"COM", b"allowed", b"test", b"xn--t-bga", b"a.b", b"\x00\xff"])


@st.composite
def queries(draw):
    """A query that parses (or almost): random name, type, class, flags and EDNS."""
    labels = draw(st.lists(LABEL, max_size=5))
    name = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    qtype = draw(st.sampled_from([1, 28, 5, 15, 16, 65, 255, 252, 41, 250, 0, 65535]))
    qclass = draw(st.sampled_from([1, 1, 1, 3, 255]))
    flags = draw(st.sampled_from([0x0100, 0x0000, 0x0110, 0x0120, 0x0130, 0x0300, 0x8100,
                                  0x0100 | (4 << 11), 0x0100 | (2 << 11)]))
    ar = b""
    arcount = 0
    if draw(st.booleans()):
        opts = b""
        for code, body in draw(st.lists(st.tuples(st.sampled_from([8, 10, 12, 15, 65001]),
                                                  st.binary(max_size=8)), max_size=3)):
            opts += struct.pack("!HH", code, len(body)) + body
        rdlen = len(opts) + draw(st.sampled_from([0, 0, 0, 1, -1]))
        ar = b"\x00" + struct.pack("!HHBBHH", 41, draw(st.sampled_from([0, 512, 1232, 4096,
                                                                          65535])),
                                   0, draw(st.sampled_from([0, 0, 1])),
                                   draw(st.sampled_from([0, 0x8000])), max(rdlen, 0)) + opts
        arcount = 1
    return hdr(qid=draw(st.integers(0, 0xFFFF)), flags=flags, ar=arcount) + name + \
        struct.pack("!HH", qtype, qclass) + ar


@st.composite
def packets(draw):
    """The malformed corpus, generated queries and random bytes, then maybe mutated."""
    data = draw(st.one_of(st.sampled_from(SEEDS), queries(), st.binary(max_size=80)))
    for _ in range(draw(st.integers(0, 2))):
        if not data:
            break
        how = draw(st.sampled_from(["flip", "cut", "append"]))
        i = draw(st.integers(0, len(data) - 1))
        if how == "flip":
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
        elif how == "cut":
            data = data[:i]
        else:
            data = data + draw(st.binary(min_size=1, max_size=8))
    return data


def parsed(impl, data):
    """What a parser makes of a packet, as comparable values."""
    try:
        q = impl.parse_query(data)
    except wire.Drop as exc:
        return ("drop", str(exc))
    except wire.BadQuery as exc:
        q = exc.question
        return ("bad", int(exc.rcode), str(exc), _fields(q) if q is not None else None)
    return ("ok", _fields(q))


def _fields(q):
    return (q.id, q.flags, q.name, q.qtype, q.qclass, q.question, q.edns)


def _responses():
    """Upstream answers of every shape the cache keeps, normalized into Entry arguments."""
    out = []
    a = DNSRecord.question("allowed.test").reply()
    a.add_answer(RR("allowed.test", QTYPE.A, ttl=300, rdata=A("192.0.2.1")))
    a.add_answer(RR("allowed.test", QTYPE.A, ttl=5, rdata=A("192.0.2.2")))
    out.append(a.pack())
    six = DNSRecord.question("allowed.test", "AAAA").reply()
    six.header.ad = 1
    six.add_answer(RR("allowed.test", QTYPE.AAAA, ttl=3600, rdata=AAAA("2001:db8::1")))
    out.append(six.pack())
    nx = DNSRecord.question("nothing.test").reply()
    nx.header.rcode = 3
    nx.add_auth(RR("test", QTYPE.SOA, ttl=900, rdata=SOA("ns.test", "h.test",
                                                          (1, 2, 3, 4, 60))))
    out.append(nx.pack())
    big = DNSRecord.question("big.test", "TXT").reply()
    for i in range(40):
        big.add_answer(RR("big.test", QTYPE.A, ttl=100 + i, rdata=A(f"192.0.2.{i}")))
    out.append(big.pack())
    return out


RESPONSES = _responses()


def entry_for(i: int) -> Entry:
    data = RESPONSES[i]
    return Entry.from_response(data, wire.scan_response(data))


EDE = struct.pack("!HH", 15, 7) + b"\x00\x0ffilterd"


def outcome(impl, data, mode: int, age: int, limit: int, which: int):
    """Every answer the fast path makes for this packet (None where no answer is sent)."""
    try:
        q = impl.parse_query(data)
    except wire.Drop:
        return (None,)
    except wire.BadQuery as exc:
        if exc.question is None:
            return (wire.bare_error(data, exc.rcode),)
        return (impl.answer(exc.question, int(exc.rcode)),
                impl.answer(exc.question, int(exc.rcode), 0, 0, b"", EDE))
    record = wire.rr(1, 10, b"\xc0\x00\x02\x01")
    entry = entry_for(which)
    return (
        impl.answer(q, mode, 1, 0, record, EDE if q.edns is not None else b""),
        impl.answer(q, 3, 0, 1, record),
        impl.answer(q, 2, 0, 0, b"", EDE),
        impl.answer(q, 16),   # BADVERS: an extended rcode
        impl.answer(q, 0, extra_flags=wire.TC),
        impl.opt_for(q), impl.opt_for(q, 1, EDE),
        impl.render(entry, q, age, limit),
        impl.render(entry, q, age + 1, limit),   # the memoized body, then a new age
        impl.render(entry, q, age + 1, 65535),
        impl.render(entry, q, 0, limit, body=entry.body_with_ttl(30), options=EDE),
        impl.render(entry, q, age, 65535, options=EDE),
        impl.body_at(entry_for(which), age),
    )


FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(packets())
def test_parser_is_the_same_on_any_packet(data):
    assert parsed(native(), data) == parsed(_pure, data)
    # Any bytes-like: memoryview from a TCP buffer, bytearray.
    assert parsed(native(), bytearray(data)) == parsed(_pure, data)


@FUZZ
@given(packets(), st.sampled_from([0, 0, 2, 3, 5]), st.integers(0, 4000),
       st.sampled_from([512, 1232, 65535, 40]), st.integers(0, len(RESPONSES) - 1))
def test_answers_are_the_same_bytes(data, mode, age, limit, which):
    assert outcome(native(), data, mode, age, limit, which) == \
        outcome(_pure, data, mode, age, limit, which)


def scanned(impl, data):
    """What a response scanner makes of a packet: the Layout and TTL fields, or its error."""
    try:
        lay = impl.scan_response(data)
    except wire.BadQuery as exc:
        return ("bad", int(exc.rcode), str(exc))
    fields = tuple(getattr(lay, k) for k in wire.Layout.__slots__)
    return ("ok", fields, impl.ttl_fields(data, lay))


@st.composite
def responses(draw):
    """Upstream answers of every shape, the corpus, random bytes; then maybe mutated."""
    data = draw(st.one_of(st.sampled_from(RESPONSES), st.sampled_from(SEEDS),
                          st.binary(max_size=120)))
    if draw(st.booleans()) and len(data) > 12:   # with an OPT at the end, or in the middle
        opt = b"\x00" + struct.pack("!HHBBHH", 41, 1232, draw(st.integers(0, 2)), 0, 0, 0)
        data = data[:10] + (int.from_bytes(data[10:12], "big") + 1).to_bytes(2, "big") + \
            data[12:] + opt
    for _ in range(draw(st.integers(0, 2))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
        else:
            data = data[:i]
    return data


@FUZZ
@given(responses())
def test_response_scanner_is_the_same_on_any_packet(data):
    assert scanned(native(), data) == scanned(_pure, data)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_parses_the_same(case):
    data = CORPUS[case]
    assert parsed(native(), data) == parsed(_pure, data)
    assert outcome(native(), data, 0, 7, 512, 0) == outcome(_pure, data, 0, 7, 512, 0)
    assert scanned(native(), data) == scanned(_pure, data)


def test_build_opt_the_same():
    for args in [(), (True,), (False, 1), (True, 255, EDE), (True, 0, b"")]:
        assert native().build_opt(*args) == _pure.build_opt(*args)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["get", "put", "clear"]), st.integers(0, 30),
                          st.floats(0, 5, allow_nan=False), st.floats(0, 3, allow_nan=False)),
                max_size=60),
       st.sampled_from([(1.0, 5), (0.5, 2), (1.0, 0), (0.0, 10)]))
def test_recent_maps_agree(ops, shape):
    maps = [impl.Recent(*shape) for impl in IMPLS if impl is not None]
    assert len(maps) == 2, "the compiled module is missing"
    now = 0.0
    for op, key, step, life in ops:
        now += step
        got = []
        for m in maps:
            if op == "get":
                got.append(m.get(key, now))
            elif op == "put":
                m.put(key, (now + life, key), now)
            else:
                m.clear()
            got.append((len(m), m.enabled, m.rotate_at))
        assert got[: len(got) // 2] == got[len(got) // 2:]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["get", "put", "put", "clear"]),
                          st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1", "::ffff:10.0.0.3",
                                           "", "10.0.0.4"]),
                          st.sampled_from(["thcs", "thpt", "10.0.0.1", "staff"])),
                max_size=60),
       st.sampled_from([0, 1, 2, 3, 4096]))
def test_group_tables_agree(ops, size):
    tables = [impl.GroupTable(size) for impl in IMPLS if impl is not None]
    assert len(tables) == 2, "the compiled module is missing"
    for op, ip, group in ops:
        got = []
        for t in tables:
            if op == "get":
                got.append(t.get(ip))
            elif op == "put":
                t.put(ip, group)
            else:
                t.clear()
            got.append((len(t), t.max_entries))
        assert got[: len(got) // 2] == got[len(got) // 2:]


def test_recent_rejects_negative_shapes():
    for impl in (native(), _pure):
        with pytest.raises(ValueError):
            impl.GroupTable(-1)
    for impl in (native(), _pure):
        with pytest.raises(ValueError):
            impl.Recent(-1, 5)
        with pytest.raises(ValueError):
            impl.AnswerMemo(1.0, -5)


# -- the UDP loop over real sockets ----------------------------------------------------------


class Loop:
    """One implementation's UdpLoop on a loopback socket, answering like the resolver."""

    def __init__(self, impl) -> None:
        self.impl = impl
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.memo = impl.AnswerMemo(60.0, 1000)
        self.handled: list[tuple[bytes, str]] = []
        self.replayed: list[str] = []
        self.later: list[tuple[object, tuple]] = []
        self.loop = impl.UdpLoop(self.sock, self.memo, self.handle, self.replay,
                                 lambda res, addr: self.later.append((res, addr)))

    def handle(self, data: bytes, ip: str, tcp: bool):
        self.handled.append((data, ip))
        out = outcome(self.impl, data, 0, 1, 512, 0)[0]
        if out is not None and data[2:3] == b"\x00":
            self.memo.put((ip, data[2:]), (1e9, out[2:], 0, None, None), time.monotonic())
        if data[-1:] == b"\x07":
            return "pending"   # something for later(): a miss going upstream
        if data[-1:] == b"\x08":
            raise RuntimeError("a bug in handle() must not stop the loop")
        return out

    def replay(self, hit, ip):
        self.replayed.append(ip)
        return None if hit[1][-1:] == b"\x09" else hit[1]   # rate limited: silence

    def close(self):
        self.sock.close()


def exchange(loop: Loop, client: socket.socket, batch: list[bytes]) -> list[bytes]:
    addr = loop.sock.getsockname()
    for data in batch:   # on loopback a datagram is queued by the time sendto returns
        client.sendto(data, addr)
    read = 0
    while read < len(batch):
        got = loop.loop.drain(time.monotonic())
        assert got, "a datagram sent was not read"
        read += got
    out = []
    client.setblocking(False)
    while True:   # and so are the answers by the time drain() returns
        try:
            out.append(client.recv(65535))
        except BlockingIOError:
            return out


@pytest.fixture(scope="module")
def loops():
    pair = [Loop(native()), Loop(_pure)]
    clients = []
    for _ in pair:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        clients.append(c)
    yield pair, clients
    for x in pair:
        x.close()
    for c in clients:
        c.close()


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(packets().filter(lambda p: len(p) > 0), min_size=1, max_size=12))
def test_udp_loops_send_the_same_bytes(loops, batch):
    pair, clients = loops
    # Each batch twice: the second time the memo answers what handle() remembered.
    for _ in range(2):
        got = [sorted(exchange(loop, c, batch)) for loop, c in zip(pair, clients, strict=True)]
        assert got[0] == got[1]
    assert pair[0].handled == pair[1].handled   # what went on to handle(): same bytes, same IP
    assert pair[0].replayed == pair[1].replayed
    # later() gets the client's address as the socket module writes it, port included.
    for loop, client in zip(pair, clients, strict=True):
        assert {a for _, a in loop.later} <= {client.getsockname()}
    assert [r for r, _ in pair[0].later] == [r for r, _ in pair[1].later]


def test_udp_loop_batches_and_reports_ipv6_addresses():
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    sock.setblocking(False)
    seen, later = [], []

    def handle(data, ip, tcp):
        seen.append(ip)
        return None if data[-1:] == b"\x07" else data[:2] + b"ok"

    loop = native().UdpLoop(sock, None, handle, None, lambda r, a: later.append(a))
    client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    client.bind(("::1", 0))
    for i in range(100):
        client.sendto(bytes([0, i]) + b"x" * 10, sock.getsockname()[:2])
    time.sleep(0.05)
    assert loop.drain(time.monotonic()) == 64     # one batch at most per wake-up
    assert loop.drain(time.monotonic()) == 36
    assert loop.drain(time.monotonic()) == 0
    assert seen == ["::1"] * 100
    client.settimeout(1)
    answers = {client.recv(100) for _ in range(100)}
    assert answers == {bytes([0, i]) + b"ok" for i in range(100)}
    sock.close()
    client.close()


# -- the whole DNS suite on the twin ---------------------------------------------------------


# The daemon tests that go through the query path (the rest are about config and processes).
DAEMON_ON_THE_TWIN = ("not test_fastpath.py and (not test_daemon.py "
                      "or reloads_under_load_lose_nothing[1] or malformed or blocked_per_group "
                      "or allowed_and_cached or safe_search or any_is or category_block "
                      "or tcp_pipelining or edns or dig)")


@pytest.mark.skipif(FORCED_PURE, reason="this run is the twin's")
def test_pure_twin_passes_the_dns_suite():
    """Every DNS test again with FILTERD_PUREPYTHON=1 (CI runs both implementations): the
    DNS suite, the daemon's DNS listener fuzz and the daemon tests of the query path."""
    env = {**os.environ, "FILTERD_PUREPYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/dns",
         "tests/test_fuzz_daemon.py", "tests/test_daemon.py", "-k", DAEMON_ON_THE_TWIN],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    tail = "\n".join(out.stdout.splitlines()[-25:])
    assert out.returncode == 0, tail + out.stderr[-2000:]
    assert " passed" in tail


def test_replay_counts_and_logs_the_same():
    """A memo hit through either implementation: the same counts, events and answer."""

    class Limit:
        def __init__(self):
            self.calls = 0

        def allow(self, ip):
            self.calls += 1
            return self.calls % 3 != 0   # every third over the limit

    class Resolver:
        def __init__(self):
            self.stats = {"queries": 0, "blocked": 0, "rate_limited": 0}
            self.rate_limit = Limit()
            self.cache = type("Cache", (), {"hits": 0})()
            self.events = type("Events", (), {"record": lambda s, d, q: self.logged.append(
                (d, q))})()
            self.logged = []

    got = []
    for impl in (native(), _pure):
        r = Resolver()
        replay = impl.Replay(r)
        out = [replay((9.0, b"tail%d" % kind, kind, f"decision{kind}", "query"), "10.0.0.1")
               for kind in (0, 1, 2, 1, 2, 0, 1)]
        got.append((out, r.stats, r.cache.hits, r.logged))
        r.rate_limit = None   # swapped on the resolver: seen at once
        assert replay((9.0, b"t", 0, "d", "q"), "10.0.0.1") == b"t"
    assert got[0] == got[1]
    assert got[0][0][2] is None and got[0][1]["rate_limited"] == 2


def test_readable_reads_the_clock_the_memo_is_kept_in():
    """readable() (the event loop's callback) drains with time.monotonic()'s clock: an
    entry alive now is answered, one that just expired is not."""
    for impl in (native(), _pure):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.settimeout(2)
        memo = impl.AnswerMemo(60.0, 100)
        handled = []
        loop = impl.UdpLoop(sock, memo, lambda d, ip, tcp, seen=handled: seen.append(d),
                            lambda h, ip: h[1], None)
        alive = hdr(qid=1) + b"\x01a\x00\x00\x01\x00\x01"
        dead = hdr(qid=2) + b"\x01b\x00\x00\x01\x00\x01"
        now = time.monotonic()
        memo.put(("127.0.0.1", alive[2:]), (now + 30, b"ALIVE", 0, None, None), now)
        memo.put(("127.0.0.1", dead[2:]), (now - 0.001, b"DEAD", 0, None, None), now)
        client.sendto(alive, sock.getsockname())
        client.sendto(dead, sock.getsockname())
        loop.readable()
        assert client.recv(100) == alive[:2] + b"ALIVE"
        assert handled == [dead]   # expired: handed on, not answered from the memo
        sock.close()
        client.close()


def test_replay_ages_a_cached_answer_as_render_does():
    """A memo hit on a cached answer ages its records' TTLs to now: the same bytes as
    rendering the cache entry anew, in both implementations."""
    q = _pure.parse_query(hdr(qid=7, ar=1) + b"\x07allowed\x04test\x00\x00\x01\x00\x01"
                          + b"\x00" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0x8000, 0))
    outs = []
    for impl in (native(), _pure):
        clock = [1000.0]
        entry = entry_for(0)
        entry.stored_at = 990.4   # 9 s old
        entry.expires = 1290.4
        first = impl.render(entry, q, 9, 1232)

        resolver = types.SimpleNamespace(
            stats={"queries": 0, "blocked": 0, "rate_limited": 0}, rate_limit=None,
            cache=types.SimpleNamespace(hits=0, clock=lambda now=clock: now[0]),
            events=types.SimpleNamespace(record=lambda d, q: None))

        start = 10 + len(q.question)
        hit = (9e9, first[2:], 2, "d", "q", entry, 9, start, start + len(entry.body))
        replay = impl.Replay(resolver)
        same = replay(hit, "10.0.0.1")
        clock[0] += 2.0   # two seconds later: the TTLs are two lower
        later = replay(hit, "10.0.0.1")
        assert same == first[2:]
        assert later == impl.render(entry_for(0), q, 11, 1232)[2:]
        assert later != same
        outs.append((same, later))
    assert outs[0] == outs[1]
