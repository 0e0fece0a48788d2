"""`filterd run` as a process against a real unbound upstream, queried with dig and dnspython.

Groups are told apart by source address (127.0.0.1 default group, 127.0.0.2 THPT,
127.0.0.3 staff): Linux routes all of 127/8 to lo, so a client just binds one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from corpus import CORPUS, ask_udp, assert_like_unbound, frame, read_frames
from dnshelpers import Unbound, free_port, wait_dns

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration

POLICY = """\
version: 1
default_group: chua_xac_dinh
protected:
  files: [protected.txt]
groups:
  chua_xac_dinh:
    label_vi: Chưa xác định
    label_en: Unidentified
    deny: [blocked.test]
    block:
      always: [adult]
    safe_search: strict
    youtube: strict
    block_mode: nxdomain
  thpt:
    label_vi: THPT
    label_en: Upper secondary
    clients: [127.0.0.2]
    deny: [blocked.test, {extra}]
    block:
      always: [adult]
    safe_search: strict
    youtube: moderate
    block_mode: address
  giao_vien:
    label_vi: Giáo viên
    label_en: Staff
    clients: [127.0.0.3]
    safe_search: "off"
    youtube: "off"
    block_mode: "null"
"""

DEFAULT, THPT, STAFF = "127.0.0.1", "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


class Daemon:
    """`python -m filterd run --config filterd.yaml` in a temporary directory."""

    def __init__(self, tmp: Path, upstream, *, workers: int = 1, flush_interval: float = 1.0,
                 dns_extra: str = "", ipv6: bool = False, extra: str = "",
                 events_extra: str = ""):
        """`upstream` is one (host, port) or a list of them; `dns_extra` more `dns:` lines;
        `ipv6`: listen on [::1] too, same port; `extra`: more top-level YAML."""
        upstreams = [upstream] if isinstance(upstream[0], str) else list(upstream)
        self.tmp = tmp
        self.port = free_port()
        listen = [f"127.0.0.1:{self.port}"] + ([f"[::1]:{self.port}"] if ipv6 else [])
        self.policy_dir = tmp / "policies"
        self.policy_dir.mkdir()
        (self.policy_dir / "protected.txt").write_text("protected.test\n")
        self.set_policy("extra.test")
        self.config = tmp / "filterd.yaml"
        self.config.write_text(
            f"data_dir: {tmp / 'var'}\npolicy_dir: {self.policy_dir}\n"
            "appliance_ipv4: 10.0.0.1\n"
            f"dns:\n  listen: {listen!r}\n"
            f"  upstreams: [{', '.join(repr(f'{h}:{p}') for h, p in upstreams)}]\n"
            f"  upstream_timeout: 0.5\n  workers: {workers}\n{dns_extra}"
            f"events:\n  flush_interval: {flush_interval}\n{events_extra}"
            "http:\n  block_page_listen: '127.0.0.1:0'\n  proxy_listen: '127.0.0.1:0'\n"
            + extra)
        self.proc: subprocess.Popen | None = None

    def set_policy(self, extra: str) -> None:
        (self.policy_dir / "policy.yaml").write_text(POLICY.replace("{extra}", extra))

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def env(self):
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def start(self):
        self.start_without_wait()
        wait_dns(self.address, "allowed.test", timeout=60, proc=self.proc)
        return self

    def start_without_wait(self):
        self.log = open(self.tmp / "daemon.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "filterd", "run", "--config",
                                      str(self.config)], stdout=self.log, stderr=self.log,
                                     env=self.env(), cwd=self.tmp)
        return self

    def wait_ready(self, timeout=60.0):
        """Until the daemon answers at all (SERVFAIL included: its upstream may be refused)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.logtext()[-3000:]
            try:
                return dns.query.udp(dns.message.make_query("ready.test", "A"),
                                     self.address[0], port=self.port, timeout=1)
            except Exception:
                assert time.monotonic() < deadline, self.logtext()[-3000:]
                time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.log.close()

    def logtext(self):
        return (self.tmp / "daemon.log").read_text()

    def ask(self, name, rdtype="A", source=DEFAULT, tcp=False):
        q = dns.message.make_query(name, rdtype, use_edns=0)
        fn = dns.query.tcp if tcp else dns.query.udp
        return fn(q, self.address[0], port=self.port, timeout=3, source=source)

    def reload_cli(self):
        return subprocess.run([sys.executable, "-m", "filterd", "reload", "--config",
                               str(self.config)], capture_output=True, text=True,
                              env=self.env(), cwd=self.tmp, timeout=60)

    def wait_for(self, check, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"{what}\n{self.logtext()[-3000:]}"
            time.sleep(0.1)


def ede(msg):
    for opt in msg.options:
        if opt.otype == dns.edns.EDE:
            return opt.code, opt.text
    return None


def addresses(msg):
    return [r.address for rrset in msg.answer for r in rrset if hasattr(r, "address")]


def dig(daemon, *args):
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(daemon.port), "+tries=1", "+time=3",
                          *args], capture_output=True, text=True, timeout=20)
    return out.stdout


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, unbound):
    d = Daemon(tmp_path_factory.mktemp("filterd"), unbound.address, flush_interval=0.2).start()
    yield d
    d.stop()


def test_blocked_per_group_by_client_address(daemon):
    r = daemon.ask("blocked.test", source=DEFAULT)
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert ede(r)[0] == 15 and "group Unidentified" in ede(r)[1]   # the group's name
    r = daemon.ask("blocked.test", source=THPT)
    assert addresses(r) == ["10.0.0.1"]            # address mode: the block page
    assert r.answer[0].ttl == 10
    r = daemon.ask("blocked.test", source=STAFF)
    assert addresses(r) == ["192.0.2.66"]          # staff: not filtered, forwarded
    assert ede(r) is None
    # The protected list blocks every group, each in its own mode: staff's is null.
    r = daemon.ask("protected.test", source=STAFF)
    assert addresses(r) == ["0.0.0.0"] and r.answer[0].ttl == 10 and ede(r)[0] == 15
    assert addresses(daemon.ask("protected.test", "AAAA", source=STAFF)) == ["::"]
    assert daemon.ask("protected.test", source=DEFAULT).rcode() == dns.rcode.NXDOMAIN


def test_category_block_names_the_category(daemon):
    r = daemon.ask("pornhub.com")
    assert r.rcode() == dns.rcode.NXDOMAIN
    code, text = ede(r)
    assert code == 17 and "Adult content" in text
    r = daemon.ask("www.pornhub.com", "AAAA", source=THPT)
    assert addresses(r) == ["::1"]   # address mode: appliance_ipv6 (default ::1)


def test_bypass_names_with_dig(daemon):
    out = dig(daemon, "use-application-dns.net")
    assert "status: NXDOMAIN" in out and "EDE: 15" in out
    out = dig(daemon, "-b", STAFF, "mask.icloud.com")
    assert "status: NXDOMAIN" in out or "status: NOERROR" in out
    db = daemon.tmp / "var" / "filterd.db"

    def logged():
        with sqlite3.connect(db) as c:
            return c.execute("SELECT COUNT(*) FROM events WHERE name = 'use-application-dns.net'"
                             " AND reason = 'bypass' AND client_ip = ?", [DEFAULT]
                             ).fetchone()[0] > 0
    daemon.wait_for(logged, "bypass-name hit not in the event log")


def test_category_block_text_in_dig(daemon):
    out = dig(daemon, "pornhub.com")
    assert "status: NXDOMAIN" in out
    assert "EDE: 17 (Filtered): (filterd: Adult content; group " in out
    assert "chua_xac_dinh" not in out   # words, not the group id


def test_allowed_and_cached_with_dig(daemon):
    out = dig(daemon, "allowed.test")
    assert "192.0.2.10" in out and "status: NOERROR" in out
    out = dig(daemon, "-b", THPT, "www.allowed.test", "+tcp")
    assert "192.0.2.11" in out


def test_safe_search_and_youtube_rewrites_are_full_chains(daemon):
    r = daemon.ask("www.google.com")
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert str(r.answer[0][0].target) == "forcesafesearch.google.com."
    assert addresses(r) == ["216.239.38.120"]
    r = daemon.ask("www.youtube.com", source=THPT)
    assert str(r.answer[0][0].target) == "restrictmoderate.youtube.com."
    assert addresses(r) == ["216.239.38.121"]
    r = daemon.ask("www.google.com", source=STAFF)
    assert addresses(r) == ["142.250.1.1"]
    out = dig(daemon, "-b", THPT, "www.google.com.vn")
    assert "forcesafesearch.google.com." in out and "216.239.38.120" in out
    for name, target, address in [("www.bing.com", "strict.bing.com", "204.79.197.220"),
                                   ("duckduckgo.com", "safe.duckduckgo.com", "52.142.124.216"),
                                   ("www.youtube.com", "restrict.youtube.com", "216.239.38.119")]:
        for tcp in (False, True):
            r = daemon.ask(name, tcp=tcp)   # default group: strict safe search and YouTube
            assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.CNAME,
                                                            dns.rdatatype.A], name
            assert str(r.answer[0][0].target) == target + "."
            assert addresses(r) == [address]
            assert 0 < r.answer[0].ttl <= 10   # the rewrite TTL: a policy change shows soon


def test_events_logged_blocked_one_by_one_allowed_counted(daemon):
    daemon.ask("blocked.test", source=THPT)
    daemon.ask("other.test", source=STAFF)
    db = daemon.tmp / "var" / "filterd.db"

    def logged():
        with sqlite3.connect(db) as c:
            return c.execute("SELECT COUNT(*) FROM events WHERE client_ip = ? AND group_id = "
                             "'thpt' AND name = 'blocked.test'", [THPT]).fetchone()[0] > 0
    daemon.wait_for(logged, "blocked query not in the event log")
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM events WHERE name = 'other.test'"
                         ).fetchone()[0] == 0
        daemon.wait_for(lambda: c.execute(
            "SELECT COALESCE(SUM(n), 0) FROM counts WHERE group_id = 'giao_vien' AND "
            "action = 'allow'").fetchone()[0] > 0, "allowed queries not counted")


def test_upstream_down_servfail_then_recovery(tmp_path, unbound):
    up = Unbound(tmp_path / "up")
    (tmp_path / "up").mkdir()
    up.start()
    d = Daemon(tmp_path, up.address).start()
    try:
        assert addresses(d.ask("allowed.test")) == ["192.0.2.10"]
        up.stop()
        assert addresses(d.ask("allowed.test")) == ["192.0.2.10"]   # from the cache
        r = d.ask("other.test")
        assert r.rcode() == dns.rcode.SERVFAIL                      # never a fake NXDOMAIN
        assert ede(r)[0] == 22
        up.start()                                                  # same port again
        d.wait_for(lambda: d.ask("other.test").rcode() == dns.rcode.NOERROR,
                   "no recovery after the upstream came back")
    finally:
        d.stop()
        up.stop()


def test_reload_cli_refuses_bad_policy_and_applies_good(tmp_path, unbound):
    d = Daemon(tmp_path, unbound.address).start()
    try:
        assert d.ask("other.test", source=THPT).rcode() == dns.rcode.NOERROR
        d.set_policy("other.test")
        res = d.reload_cli()
        assert res.returncode == 0, res.stderr
        d.wait_for(lambda: addresses(d.ask("other.test", source=THPT)) == ["10.0.0.1"],
                   "good policy not applied")
        (d.policy_dir / "policy.yaml").write_text("version: 1\ngroups: [not, a, mapping]\n")
        res = d.reload_cli()
        assert res.returncode != 0 and "policy.yaml" in res.stderr
        d.proc.send_signal(signal.SIGHUP)   # the same file straight to the daemon
        d.wait_for(lambda: "reload refused" in d.logtext(), "bad policy not refused")
        assert addresses(d.ask("other.test", source=THPT)) == ["10.0.0.1"]  # old one serves
        assert d.proc.poll() is None
    finally:
        d.stop()
    assert not (tmp_path / "var" / "filterd.pid").exists()


def _load(address, stop, results, source):
    """Sequential UDP queries, each waiting for its answer: a lost one shows as a timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(2.0)
        i = 0
        while not stop.is_set():
            i += 1
            q = dns.message.make_query("blocked.test" if i % 3 else "allowed.test", "A")
            q.id = i & 0xFFFF
            s.sendto(q.to_wire(), address)
            try:
                while struct.unpack("!H", s.recv(4096)[:2])[0] != q.id:
                    pass
                results["answered"] += 1
            except TimeoutError:
                results["lost"] += 1


@pytest.mark.parametrize("workers", [1, 2])
def test_reloads_under_load_lose_nothing(tmp_path, unbound, workers):
    d = Daemon(tmp_path, unbound.address, workers=workers).start()
    results = {"answered": 0, "lost": 0}
    stop = threading.Event()
    clients = [threading.Thread(target=_load, args=(d.address, stop, results, src))
               for src in (DEFAULT, THPT)]
    try:
        for c in clients:
            c.start()
        for i in range(10):
            d.set_policy(f"n{i}.test")
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.4)
        d.wait_for(lambda: addresses(d.ask("n9.test", source=THPT)) == ["10.0.0.1"],
                   "last policy not applied")
    finally:
        stop.set()
        for c in clients:
            c.join(10)
        d.stop()
    assert results["answered"] > 0
    assert results["lost"] == 0, results
    assert d.logtext().count("reloaded policy") >= workers


def test_kill_9_with_event_writer_running(tmp_path, unbound):
    d = Daemon(tmp_path, unbound.address, flush_interval=0.2).start()
    answered = []   # when each blocked query was answered
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            end = time.monotonic() + 3
            i = 0
            while time.monotonic() < end:
                i += 1
                name = "blocked.test" if i % 2 else "allowed.test"
                s.sendto(dns.message.make_query(name, "A").to_wire(), d.address)
                s.recv(4096)
                if name == "blocked.test":
                    answered.append(time.time())
    finally:
        killed_at = time.time()
        d.proc.kill()
        d.proc.wait(10)
        d.log.close()
    db = sqlite3.connect(tmp_path / "var" / "filterd.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = db.execute("SELECT COUNT(*) FROM events WHERE name = 'blocked.test'").fetchone()[0]
    # Everything answered more than a few flush intervals (0.2 s) before the kill is on disk;
    # the margin absorbs a loaded machine.
    settled = sum(1 for t in answered if t < killed_at - 1.0)
    assert settled > 0
    assert settled <= stored <= len(answered)
    db.close()
    # The same database serves the next start: the WAL is recovered, new events go on.
    d.start()
    try:
        assert addresses(d.ask("blocked.test", source=THPT)) == ["10.0.0.1"]

        def logged_again():
            with sqlite3.connect(tmp_path / "var" / "filterd.db") as c:
                return c.execute("SELECT COUNT(*) FROM events WHERE client_ip = ?",
                                 [THPT]).fetchone()[0] == 1
        d.wait_for(logged_again, "no event written after the restart")
    finally:
        d.stop()
    with sqlite3.connect(tmp_path / "var" / "filterd.db") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT COUNT(*) FROM events WHERE name = 'blocked.test'"
                         ).fetchone()[0] == stored + 1


# -- bad input, EDNS, ANY and TCP on the real daemon ------------------------------------

NEVER_ANSWERED = ("short", "response")   # no ID to answer / a response: answering could loop


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_malformed_corpus_on_the_daemon_like_unbound(case, daemon, unbound):
    data = CORPUS[case]
    ref = ask_udp(unbound.address, data)
    ours = ask_udp(daemon.address, data)
    assert_like_unbound(case, ref, ours)
    if case in NEVER_ANSWERED:
        assert ours is None
    # The next good query is answered at once, and the daemon is still the same process.
    start = time.monotonic()
    assert addresses(daemon.ask("allowed.test")) == ["192.0.2.10"]
    assert time.monotonic() - start < 2.0   # not after a client timeout (3 s)
    assert daemon.proc.poll() is None


def test_any_is_answered_per_rfc8482(daemon):
    out = dig(daemon, "allowed.test", "ANY")
    assert "status: NOERROR" in out and "HINFO" in out and '"RFC8482"' in out
    r = daemon.ask("allowed.test", "ANY", tcp=True)
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.HINFO]
    r = daemon.ask("blocked.test", "ANY")   # a blocked name stays blocked for ANY
    assert r.rcode() == dns.rcode.NXDOMAIN and ede(r)[0] == 15


def test_tcp_pipelining_and_bad_frames_on_the_daemon(daemon):
    names = ["allowed.test", "blocked.test", "www.google.com", "nothere.test", "other.test",
             "pornhub.com", "www.allowed.test"]
    msgs = []
    for i, n in enumerate(names * 3):
        m = dns.message.make_query(n, "A")
        m.id = i
        msgs.append(m.to_wire())
    # A FORMERR packet and a response in the middle: one answered FORMERR, one never answered.
    stream = b"".join(frame(m) for m in msgs[:10]) + frame(CORPUS["compression_loop"]) \
        + frame(CORPUS["response"]) + b"".join(frame(m) for m in msgs[10:])
    with socket.create_connection(daemon.address, timeout=5) as s:
        s.sendall(stream)
        answers = read_frames(s, len(msgs) + 1)
    parsed = [dns.message.from_wire(a) for a in answers if struct.unpack("!H", a[2:4])[0] & 0xF
              != dns.rcode.FORMERR]
    assert len(answers) == len(msgs) + 1
    assert sorted(m.id for m in parsed) == list(range(len(msgs)))
    by_name = {str(m.question[0].name).rstrip("."): m for m in parsed}
    assert addresses(by_name["allowed.test"]) == ["192.0.2.10"]
    assert by_name["blocked.test"].rcode() == dns.rcode.NXDOMAIN
    assert addresses(by_name["www.google.com"]) == ["216.239.38.120"]
    assert by_name["nothere.test"].rcode() == dns.rcode.NXDOMAIN
    # A frame shorter than a DNS header ends the connection at once.
    with socket.create_connection(daemon.address, timeout=5) as s:
        s.sendall(b"\x00\x05hello")
        s.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(100) == b""
    # A frame announced longer than what follows, then EOF: no answer, connection closed.
    q = dns.message.make_query("allowed.test", "A").to_wire()
    with socket.create_connection(daemon.address, timeout=5) as s:
        s.sendall(struct.pack("!H", len(q) + 100) + q)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        assert s.recv(100) == b""
    assert addresses(daemon.ask("allowed.test", tcp=True)) == ["192.0.2.10"]


class Relay:
    """A UDP and TCP hop between filterd and unbound that keeps every query filterd sends."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        for _ in range(50):   # a UDP port whose TCP twin is free too
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.tcp = socket.socket()
            try:
                self.tcp.bind(self.sock.getsockname())
                break
            except OSError:
                self.sock.close()
                self.tcp.close()
        self.tcp.listen(8)
        self.tcp.settimeout(0.2)
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.received: list[bytes] = []
        self.tcp_received: list[bytes] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True),
                        threading.Thread(target=self._run_tcp, daemon=True)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(1.0)
            while not self.stop.is_set():
                try:
                    data, addr = self.sock.recvfrom(65535)
                except TimeoutError:
                    continue
                self.received.append(data)
                up.sendto(data, self.upstream)
                with contextlib.suppress(TimeoutError):
                    self.sock.sendto(up.recv(65535), addr)

    def _run_tcp(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError), \
                    socket.create_connection(self.upstream, timeout=2) as up:
                conn.settimeout(2)
                frames = read_frames(conn, 1)
                self.tcp_received += frames
                up.sendall(frame(frames[0]))
                conn.sendall(frame(read_frames(up, 1)[0]))

    def queries_for(self, name: str) -> list[dns.message.Message]:
        out = []
        for data in list(self.received):
            m = dns.message.from_wire(data)
            if str(m.question[0].name).rstrip(".").lower() == name:
                out.append(m)
        return out

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.sock.close()
        self.tcp.close()


def test_edns_sane_client_subnet_stripped_and_cached(tmp_path, unbound):
    relay = Relay(unbound.address)
    d = Daemon(tmp_path, relay.address).start()
    try:
        ecs = dns.edns.ECSOption("192.168.77.23", 24)
        cookie = dns.edns.GenericOption(dns.edns.COOKIE, b"\x01" * 8)
        q = dns.message.make_query("www.allowed.test", "A", use_edns=0, payload=4096,
                                   want_dnssec=True, options=[ecs, cookie])
        r = dns.query.udp(q, d.address[0], port=d.port, timeout=3)
        assert addresses(r) == ["192.0.2.11"]
        assert r.edns == 0 and r.payload == 1232          # our buffer size, not the client's
        assert r.ednsflags & dns.flags.DO                   # DO echoed
        assert not [o for o in r.options if o.otype == dns.edns.ECS]
        sent = relay.queries_for("www.allowed.test")
        assert len(sent) == 1
        up = sent[0]
        assert up.edns == 0 and not up.options            # no ECS, no cookie, nothing else
        assert up.ednsflags & dns.flags.DO                  # DO passed through
        assert not any(bytes([192, 168, 77]) in data for data in relay.received)
        # Cached: asked again (from two clients), upstream sees nothing more; TTLs age.
        # (Without DO the answer is another cache entry: one more upstream query, once.)
        first = d.ask("www.allowed.test")
        for src in (DEFAULT, THPT, DEFAULT):
            assert addresses(d.ask("www.allowed.test", source=src)) == ["192.0.2.11"]
        q.id = 4321
        assert addresses(dns.query.udp(q, d.address[0], port=d.port, timeout=3)) == [
            "192.0.2.11"]
        time.sleep(2.1)
        again = d.ask("www.allowed.test")
        assert again.answer[0].ttl <= first.answer[0].ttl - 2
        assert len(relay.queries_for("www.allowed.test")) == 2
        # Negative answers are cached too (RFC 2308: unbound's SOA for test.).
        assert d.ask("nothere.test").rcode() == dns.rcode.NXDOMAIN
        assert d.ask("nothere.test").rcode() == dns.rcode.NXDOMAIN
        assert len(relay.queries_for("nothere.test")) == 1
        # EDNS we do not speak: BADVERS with our OPT (version 0), never forwarded.
        r = dns.query.udp(dns.message.make_query("other.test", "A", use_edns=1),
                          d.address[0], port=d.port, timeout=3)
        assert r.rcode() == dns.rcode.BADVERS and r.edns == 0
        # A malformed OPT: FORMERR, never forwarded.
        assert ask_udp(d.address, CORPUS["opt_bad_option_length"]) == dns.rcode.FORMERR
        assert ask_udp(d.address, CORPUS["two_opts"]) == dns.rcode.FORMERR
        assert relay.queries_for("other.test") == []
        # No EDNS from the client: no OPT back, and a 512-byte answer limit (TC, then TCP).
        r = dns.query.udp(dns.message.make_query("big.test", "TXT"), d.address[0],
                          port=d.port, timeout=3, ignore_trailing=True)
        assert r.edns == -1 and r.flags & dns.flags.TC
        assert len(d.ask("big.test", "TXT", tcp=True).answer[0]) == 9
        # ... which upstream answered truncated over UDP, so filterd asked it again over TCP.
        assert [str(m.question[0].name) for m in map(dns.message.from_wire, relay.tcp_received)
                ] == ["big.test."]
    finally:
        d.stop()
        relay.close()


# -- the README's examples -------------------------------------------------------------

README = REPO / "README.md"


def readme_dig_examples() -> list[tuple[list[str], list[str]]]:
    """Every `$ dig @127.0.0.1 -p 5353 ...` line of the README and the lines shown under it."""
    prefix = "$ dig @127.0.0.1 -p 5353 "
    out: list[tuple[list[str], list[str]]] = []
    shown: list[str] | None = None
    for line in README.read_text().splitlines():
        if line.startswith(prefix):
            shown = []
            out.append((line[len(prefix):].split("#")[0].split(), shown))
        elif not line.strip() or line.startswith("```"):
            shown = None
        elif shown is not None:
            shown.append(line)
    return out


def test_readme_dig_examples_answer_as_shown(tmp_path, unbound):
    """The README's examples against the shipped policy and seed lists (embedded defaults
    except the port, the upstream and the HTTP side, which tests may not bind fixed)."""
    examples = readme_dig_examples()
    assert len(examples) >= 3
    port = free_port()
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'var'}\n"
                   f"dns:\n  listen: ['127.0.0.1:{port}']\n"
                   f"  upstreams: ['{unbound.address[0]}:{unbound.address[1]}']\n"
                   "http:\n  block_page_listen: '127.0.0.1:0'\n  proxy_listen: '127.0.0.1:0'\n"
            )
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "filterd", "run", "--config", str(cfg)],
                            stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(REPO)},
                            cwd=tmp_path)
    try:
        wait_dns(("127.0.0.1", port), "allowed.test", timeout=60, proc=proc)
        for args, shown in examples:
            out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=3",
                                  *args], capture_output=True, text=True, timeout=20).stdout
            flat = " ".join(out.split())
            for line in shown:
                if line.startswith("<"):       # a placeholder for what the upstream says
                    assert out.strip(), (args, out)
                elif "status:" in line:
                    status = line.split("status:")[1].split(",")[0].strip()
                    assert f"status: {status}" in out, (args, out)
                else:
                    assert " ".join(line.split()) in flat, (args, line, out)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


# -- upstream failover and the per-client rate limit -----------------------------------


def test_failover_past_a_dead_upstream(tmp_path, unbound):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # takes queries, never answers
    silent.bind(("127.0.0.1", 0))
    d = Daemon(tmp_path, [silent.getsockname(), unbound.address]).start()
    try:
        for name, address in [("allowed.test", "192.0.2.10"), ("other.test", "192.0.2.12"),
                              ("www.allowed.test", "192.0.2.11"), ("vnexpress.net",
                                                                    "111.65.250.2")]:
            assert addresses(d.ask(name)) == [address]
        # Once the dead one is marked down, answers no longer wait for it.
        start = time.monotonic()
        assert addresses(d.ask("big.test", "A")) == [] and time.monotonic() - start < 0.4
    finally:
        d.stop()
        silent.close()


def test_rate_limit_per_client(tmp_path, unbound):
    d = Daemon(tmp_path, unbound.address, dns_extra="  rate_limit_qps: 5\n").start()
    noisy = "127.0.0.9"
    try:
        time.sleep(1.0)   # the start-up probe's tokens refill
        answered = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((noisy, 0))
            s.settimeout(0.3)
            for i in range(40):
                q = dns.message.make_query("allowed.test", "A")
                q.id = i
                s.sendto(q.to_wire(), d.address)
            with contextlib.suppress(TimeoutError):
                while True:
                    s.recv(4096)
                    answered += 1
        assert 5 <= answered <= 15, answered      # a burst of 2 x 5, then silence
        # Over TCP the same client is told REFUSED rather than left waiting.
        with socket.socket() as s:
            s.bind((noisy, 0))
            s.connect(d.address)
            s.sendall(b"".join(frame(dns.message.make_query("allowed.test", "A").to_wire())
                               for _ in range(30)))
            rcodes = [dns.message.from_wire(a).rcode() for a in read_frames(s, 30)]
        assert len(rcodes) == 30 and rcodes.count(dns.rcode.REFUSED) >= 15, rcodes
        # Everyone else is served as usual.
        assert addresses(d.ask("allowed.test", source=THPT)) == ["192.0.2.10"]
        time.sleep(1.0)                            # and the noisy client again, once it slows down
        assert addresses(d.ask("allowed.test", source=noisy)) == ["192.0.2.10"]
    finally:
        d.stop()


def test_ipv4_and_ipv6_listen_addresses(tmp_path, unbound):
    d = Daemon(tmp_path, unbound.address, ipv6=True)
    try:
        d.start()
    except RuntimeError:
        d.stop()
        if "Address already in use" in d.logtext():
            pytest.skip("the [::1]:port twin of a free IPv4 port was taken")
        raise
    try:
        for host in ("127.0.0.1", "::1"):
            for fn in (dns.query.udp, dns.query.tcp):
                q = dns.message.make_query("allowed.test", "A")
                assert addresses(fn(q, host, port=d.port, timeout=3)) == ["192.0.2.10"]
                q = dns.message.make_query("blocked.test", "AAAA", use_edns=0)
                r = fn(q, host, port=d.port, timeout=3)
                assert r.rcode() == dns.rcode.NXDOMAIN and ede(r)[0] == 15
        out = subprocess.run(["dig", "@::1", "-p", str(d.port), "+short", "allowed.test"],
                             capture_output=True, text=True, timeout=20).stdout
        assert out.split() == ["192.0.2.10"]
    finally:
        d.stop()
