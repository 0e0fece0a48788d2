"""The daemon as a process: reload (good, bad, under load), workers, kill -9 with the writer."""

from __future__ import annotations

import json
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

import dns.message
import dns.query
import dns.rcode
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound, free_port, wait_dns

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


class FakeDaemon:
    def __init__(self, tmp: Path, upstream, **settings):
        self.tmp = tmp
        self.port = free_port()
        self.policy = tmp / "policy.json"
        self.policy.write_text(json.dumps({"blocked": ["blocked.test"]}))
        self.settings = tmp / "settings.json"
        self.settings.write_text(json.dumps({
            "listen": [["127.0.0.1", self.port]], "upstreams": [list(upstream)],
            "data_dir": str(tmp / "var"), "policy": str(self.policy), **settings}))
        self.proc = None

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def start(self):
        self.log = open(self.tmp / "daemon.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "daemon_fake.py"),
                                      str(self.settings)], stdout=self.log, stderr=self.log,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        wait_dns(self.address, "allowed.test", proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.log.close()

    def logtext(self):
        return (self.tmp / "daemon.log").read_text()

    def rcode(self, name, source="127.0.0.1"):
        q = dns.message.make_query(name, "A")
        return dns.query.udp(q, self.address[0], port=self.port, timeout=3, source=source).rcode()


def test_reload_good_and_bad_policy(tmp_path, unbound):
    d = FakeDaemon(tmp_path, unbound.address).start()
    try:
        assert d.rcode("blocked.test") == dns.rcode.NXDOMAIN
        assert d.rcode("allowed.test") == dns.rcode.NOERROR
        d.policy.write_text(json.dumps({"blocked": ["allowed.test"]}))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while d.rcode("allowed.test") != dns.rcode.NXDOMAIN:
            assert time.monotonic() < deadline, d.logtext()
            time.sleep(0.1)
        d.policy.write_text("{not json")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while "reload refused" not in d.logtext():
            assert time.monotonic() < deadline, d.logtext()
            time.sleep(0.1)
        assert "policy.json" in d.logtext()
        assert d.rcode("allowed.test") == dns.rcode.NXDOMAIN   # the old one keeps serving
        assert d.proc.poll() is None
    finally:
        d.stop()
    assert not (tmp_path / "var" / "filterd.pid").exists()


def _load(address, stop, results):
    """Sequential UDP queries, each waiting for its answer: a lost one shows as a timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        i = 0
        while not stop.is_set():
            i += 1
            q = dns.message.make_query("blocked.test" if i % 3 else "allowed.test", "A")
            q.id = i & 0xFFFF
            s.sendto(q.to_wire(), address)
            try:
                while True:
                    data = s.recv(4096)
                    if struct.unpack("!H", data[:2])[0] == q.id:
                        break
                results["answered"] += 1
            except TimeoutError:
                results["lost"] += 1


@pytest.mark.parametrize("workers", [1, 2])
def test_reloads_under_load_lose_nothing(tmp_path, unbound, workers):
    d = FakeDaemon(tmp_path, unbound.address, workers=workers).start()
    results = {"answered": 0, "lost": 0}
    stop = threading.Event()
    clients = [threading.Thread(target=_load, args=(d.address, stop, results)) for _ in range(2)]
    try:
        for c in clients:
            c.start()
        for i in range(10):
            d.policy.write_text(json.dumps({"blocked": ["blocked.test", f"n{i}.test"]}))
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
        deadline = time.monotonic() + 20
        while d.rcode("n9.test") != dns.rcode.NXDOMAIN:
            assert time.monotonic() < deadline, d.logtext()
            time.sleep(0.1)
    finally:
        stop.set()
        for c in clients:
            c.join(10)
        d.stop()
    assert results["answered"] > 0
    assert results["lost"] == 0, results
    assert d.logtext().count("reloaded policy") >= workers


def test_kill_9_with_event_writer_running(tmp_path, unbound):
    d = FakeDaemon(tmp_path, unbound.address, flush_interval=0.2).start()
    answered = []   # (time answered, name)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            end = time.monotonic() + 3
            i = 0
            while time.monotonic() < end:
                i += 1
                name = "blocked.test" if i % 2 else "allowed.test"
                q = dns.message.make_query(name, "A")
                s.sendto(q.to_wire(), d.address)
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
    # Everything answered more than a couple of flush intervals before the kill is on disk
    # (the margin absorbs a loaded machine; the flush interval is 0.2 s).
    settled = sum(1 for t in answered if t < killed_at - 1.0)
    assert settled > 0
    assert stored >= settled, (stored, settled, len(answered))
    assert stored <= len(answered)
