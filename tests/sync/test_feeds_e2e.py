"""Signed feeds end to end on loopback: one office, two appliances, real daemons and dig.

The office publishes a protected-feed version; each appliance's `filterd feeds pull`
(what its timer runs) verifies and installs it and reloads the daemon; dig then sees
the name blocked, with no query lost meanwhile. Tampered, older and oversized feeds
are refused with the last good kept; an appliance offline for two versions catches up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from filterd.sync.feed import Feed, seal
from filterd.sync.office.app import create_app
from filterd.sync.office.feeds import FeedPublisher, office_public_hex
from filterd.sync.office.storage import Storage
from tests.sync.conftest import TZ, stop_waitress
from tests.test_daemon import Daemon
from tests.test_daemon import unbound as _daemon_unbound

pytestmark = pytest.mark.integration
unbound = _daemon_unbound   # test_daemon's unbound fixture, one per module
REPO = Path(__file__).resolve().parents[2]


class _Office:
    def __init__(self, tmp: Path):
        import waitress

        self.dir = tmp / "office"
        self.storage = Storage(f"sqlite:///{self.dir / 'office.db'}")
        self.storage.migrate()
        self.publisher = FeedPublisher(self.storage, self.dir)
        self.app = create_app(self.storage, secret=b"k" * 32, timezone=TZ, data_dir=self.dir)
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=0, threads=4)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        # what a stale or hostile copy of the office would serve instead of the latest
        self.override: bytes | None = None

    def stop(self):
        stop_waitress(self.server, self.thread)
        self.storage.close()


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    o = _Office(tmp_path_factory.mktemp("office"))
    yield o
    o.stop()


def _appliance(tmp: Path, unbound, office, school_id: str) -> Daemon:
    from filterd.sync.office.enrol import enrol_school

    enrol_school(office.storage, school_id, f"THCS {school_id}", "Ba Đình", "Hà Nội")
    d = Daemon(tmp, unbound.address, flush_interval=0.2)
    (tmp / "var").mkdir(exist_ok=True)
    (tmp / "var" / "office-key.pub").write_text(office_public_hex(office.dir) + "\n")
    text = d.config.read_text()
    d.config.write_text(f"school_id: {school_id}\n" + text
                        + f"sync:\n  office_url: {office.url}\n")
    return d


@pytest.fixture(scope="module")
def schools(tmp_path_factory, unbound, office):
    a = _appliance(tmp_path_factory.mktemp("school-a"), unbound, office, "school-a").start()
    b = _appliance(tmp_path_factory.mktemp("school-b"), unbound, office, "school-b").start()
    yield a, b
    a.stop()
    b.stop()


def pull(d: Daemon) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "filterd", "feeds", "pull", "--config",
                           str(d.config)], capture_output=True, text=True, env=d.env(),
                          cwd=d.tmp, timeout=60)


def status(d: Daemon) -> str:
    return subprocess.run([sys.executable, "-m", "filterd", "feeds", "status", "--config",
                           str(d.config)], capture_output=True, text=True, env=d.env(),
                          cwd=d.tmp, timeout=60).stdout


def blocked(d: Daemon, name: str) -> bool:
    r = d.ask(name, source="127.0.0.2")   # THPT: block_mode address -> the appliance
    return any(rr.to_text().endswith("10.0.0.1") for rrset in r.answer for rr in rrset)


class Prober:
    """Queries one appliance without pause; counts the ones that got no answer."""

    def __init__(self, d: Daemon):
        self.d, self.sent, self.lost = d, 0, 0
        self._stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self._stop.is_set():
            q = dns.message.make_query("allowed.test", "A")
            self.sent += 1
            try:
                r = dns.query.udp(q, "127.0.0.1", port=self.d.port, timeout=2)
                if r.rcode() != dns.rcode.NOERROR:
                    self.lost += 1
            except Exception:
                self.lost += 1
            time.sleep(0.005)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.t.join(5)


def test_protected_feed_reaches_both_schools_without_losing_a_query(schools, office):
    a, b = schools
    assert not blocked(a, "other.test") and not blocked(b, "other.test")
    office.publisher.publish("protected", ["other.test"], scope="Sở GD&ĐT thử nghiệm")
    with Prober(a) as probe_a, Prober(b) as probe_b:
        for d in (a, b):
            out = pull(d)
            assert out.returncode == 0, out.stderr
            assert "protected: updated (version 1)" in out.stdout
            d.wait_for(lambda d=d: blocked(d, "other.test"), "protected feed not applied")
        time.sleep(0.5)
    assert probe_a.sent > 50 and probe_b.sent > 50
    assert probe_a.lost == 0 and probe_b.lost == 0
    # the reason the student and the teacher see names the office's list
    r = a.ask("other.test", source="127.0.0.2")
    ede = [o for o in r.options if getattr(o, "otype", None) == 15]
    assert ede and "Illegal content" in ede[0].text
    # nothing below the protected list unblocks it: not even the staff group
    assert blocked_any(a, "other.test", "127.0.0.3")
    # a second pull asks with If-None-Match and changes nothing
    out = pull(a)
    assert out.returncode == 0 and "protected: unchanged (version 1)" in out.stdout
    assert "reload" not in out.stdout
    pulls = office.publisher.pulls()   # the office knows which version each school fetched
    assert pulls["school-a"]["protected"][0] == 1 and pulls["school-b"]["protected"][0] == 1
    assert "version 1" in status(a)


def blocked_any(d: Daemon, name: str, source: str) -> bool:
    r = d.ask(name, source=source)
    return (not r.answer) or any(rr.to_text().endswith(("10.0.0.1", "0.0.0.0"))
                                 for rrset in r.answer for rr in rrset)


def _serve(office, body: bytes):
    """Make the office answer every feed request with `body` (a hostile or stale copy)."""
    from flask import Response

    def hostile(kind):
        return Response(body, mimetype="application/json")

    office.app.view_functions["api.feed"] = hostile


def _restore(office):
    from filterd.sync.office import api

    office.app.view_functions["api.feed"] = api.feed


@pytest.mark.parametrize("attack", ["tampered", "older", "oversized", "other-key"])
def test_bad_feed_refused_last_good_kept(schools, office, attack):
    a, _ = schools
    latest = office.publisher.publish("protected", ["other.test", "www.allowed.test"])
    assert pull(a).returncode == 0
    a.wait_for(lambda: blocked(a, "www.allowed.test"), "newest protected feed not applied")
    good = (a.tmp / "var" / "feeds" / "protected.json").read_bytes()
    if attack == "tampered":
        env = json.loads(latest.envelope)
        import base64

        payload = json.loads(base64.b64decode(env["payload"]))
        payload["entries"] = []
        payload["version"] += 1
        env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
        body = json.dumps(env).encode()
    elif attack == "older":
        rows = office.storage.query("SELECT envelope FROM feeds WHERE kind = 'protected'"
                                    " AND version = 1")
        body = rows[0][0].encode()
    elif attack == "oversized":
        body = b'{"format": "filterd-feed-v1", "pad": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    else:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        body = seal(Feed.build("protected", latest.version + 5, []), Ed25519PrivateKey.generate())
    _serve(office, body)
    try:
        out = pull(a)
    finally:
        _restore(office)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "protected: refused" in out.stderr and "last good kept" in out.stderr
    assert (a.tmp / "var" / "feeds" / "protected.json").read_bytes() == good
    assert blocked(a, "www.allowed.test") and blocked(a, "other.test")
    assert "ERROR" in status(a)


def test_offline_school_catches_up_to_the_latest(schools, office):
    _, b = schools
    latest = office.publisher.latest("protected")
    before = latest.version if latest else 0
    office.publisher.publish("protected", ["other.test", "v2.allowed.test"])
    office.publisher.publish("protected", ["other.test", "www.allowed.test", "vnexpress.net"])
    out = pull(b)
    assert out.returncode == 0, out.stderr
    assert f"protected: updated (version {before + 2})" in out.stdout
    b.wait_for(lambda: blocked(b, "vnexpress.net"), "latest feed not applied")
