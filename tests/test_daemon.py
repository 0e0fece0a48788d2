"""`filterd run` as a process against a real unbound upstream, queried with dig and dnspython.

Groups are told apart by source address (127.0.0.1 default group, 127.0.0.2 THPT,
127.0.0.3 staff): Linux routes all of 127/8 to lo, so a client just binds one.
"""

from __future__ import annotations

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
import dns.message
import dns.query
import dns.rcode
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
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

    def __init__(self, tmp: Path, upstream, *, workers: int = 1, flush_interval: float = 1.0):
        self.tmp = tmp
        self.port = free_port()
        self.policy_dir = tmp / "policies"
        self.policy_dir.mkdir()
        (self.policy_dir / "protected.txt").write_text("protected.test\n")
        self.set_policy("extra.test")
        self.config = tmp / "filterd.yaml"
        self.config.write_text(
            f"data_dir: {tmp / 'var'}\npolicy_dir: {self.policy_dir}\n"
            "appliance_ipv4: 10.0.0.1\n"
            f"dns:\n  listen: ['127.0.0.1:{self.port}']\n"
            f"  upstreams: ['{upstream[0]}:{upstream[1]}']\n  upstream_timeout: 0.5\n"
            f"  workers: {workers}\n"
            f"events:\n  flush_interval: {flush_interval}\n"
            "http:\n  block_page_listen: '127.0.0.1:0'\n  proxy_listen: '127.0.0.1:0'\n")
        self.proc: subprocess.Popen | None = None

    def set_policy(self, extra: str) -> None:
        (self.policy_dir / "policy.yaml").write_text(POLICY.replace("{extra}", extra))

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def env(self):
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def start(self):
        self.log = open(self.tmp / "daemon.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "filterd", "run", "--config",
                                      str(self.config)], stdout=self.log, stderr=self.log,
                                     env=self.env(), cwd=self.tmp)
        wait_dns(self.address, "allowed.test", timeout=60, proc=self.proc)
        return self

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
    assert ede(r)[0] == 15 and "chua_xac_dinh" in ede(r)[1]
    r = daemon.ask("blocked.test", source=THPT)
    assert addresses(r) == ["10.0.0.1"]            # address mode: the block page
    assert r.answer[0].ttl == 10
    r = daemon.ask("blocked.test", source=STAFF)
    assert addresses(r) == ["192.0.2.66"]          # staff: not filtered, forwarded
    assert ede(r) is None


def test_category_block_names_the_category(daemon):
    r = daemon.ask("pornhub.com")
    assert r.rcode() == dns.rcode.NXDOMAIN
    code, text = ede(r)
    assert code == 17 and "adult" in text
    r = daemon.ask("www.pornhub.com", "AAAA", source=THPT)
    assert addresses(r) == ["::1"]   # address mode: appliance_ipv6 (default ::1)


def test_bypass_names_with_dig(daemon):
    out = dig(daemon, "use-application-dns.net")
    assert "status: NXDOMAIN" in out and "EDE: 15" in out
    out = dig(daemon, "-b", STAFF, "mask.icloud.com")
    assert "status: NXDOMAIN" in out or "status: NOERROR" in out


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
