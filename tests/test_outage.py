"""The school's internet link down while devices keep asking: the running daemon, real unbound.

Two kinds of outage, each with ~1,600 new names at 320 a second (past the ~1,030
failures where the old back-off overflowed): the upstream's port closed (ICMP port
unreachable, fast failures) and an upstream that swallows every packet (timeouts).
Every query must be answered (SERVFAIL), the log must stay short and free of
tracebacks, memory bounded, and answers must come back within seconds of the
upstream's return, for names asked during the outage too.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import dns.rcode
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound, free_port

from tests.faults import assert_quiet_log, flood, metric, rss_kb, scrape
from tests.test_daemon import Daemon

pytestmark = pytest.mark.integration

QPS, SECONDS = 320, 5.0
SERVFAIL = 2


class Blackhole:
    """A UDP socket on the upstream's port that reads every query and answers none."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.received = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.sock.recv(65535)
                self.received += 1
            except TimeoutError:
                pass

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def dashboard_row(daemon: Daemon, label: str) -> dict:
    from admin_ui.backend import Backend
    from filterd.config import load_config

    rows = Backend(load_config(daemon.config)).upstream_health() or []
    return next(r for r in rows if r["upstream"] == label)


def wait_answered(daemon: Daemon, name: str, rcode: int, within: float) -> float:
    """Seconds until `name` gets `rcode` (asserts it does within `within`)."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < within:
        try:
            last = daemon.ask(name).rcode()
            if last == rcode:
                return time.monotonic() - start
        except Exception as exc:  # a timeout: keep asking, as a device does
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{name}: no {dns.rcode.to_text(rcode)} within {within}s (last {last!r})"
                         f"\n{daemon.logtext()[-3000:]}")


@pytest.fixture()
def outage(tmp_path):
    mport = free_port()
    unbound = Unbound(tmp_path / "unbound").start()
    (tmp_path / "filterd").mkdir()
    d = Daemon(tmp_path / "filterd", unbound.address, flush_interval=0.2,
               extra=f"metrics:\n  listen: '127.0.0.1:{mport}'\n").start()
    yield d, unbound, mport
    d.stop()
    unbound.stop()


def test_outage_under_load_every_query_answered_and_recovery(outage):
    daemon, unbound, mport = outage
    label = f"127.0.0.1:{unbound.port}"
    assert daemon.ask("allowed.test").rcode() == dns.rcode.NOERROR
    assert metric(scrape(mport), "filterd_upstream_up", upstream=label) == 1
    rss_before = rss_kb(daemon.proc.pid)
    log_start = len(daemon.logtext())

    # 1. The upstream's port closed: every forward fails at once (ICMP port unreachable).
    unbound.stop()
    load = flood(daemon.address, SECONDS, QPS, "refused.test")
    assert load.unanswered == 0, (load, daemon.logtext()[-3000:])
    assert load.rcodes == {SERVFAIL: load.sent}
    text = scrape(mport)
    assert metric(text, "filterd_upstream_up", upstream=label) == 0
    # What the admin dashboard shows comes from there: this resolver, not answering.
    assert {"upstream": label, "up": False}.items() <= dashboard_row(daemon, label).items()
    # Failures counted; most queries are not even sent (it is down and probes are out).
    assert metric(text, "filterd_upstream_errors_total", upstream=label) >= 3

    # The upstream is back: answers within seconds, for names asked during the outage too.
    unbound.start()
    wait_answered(daemon, "allowed.test", dns.rcode.NOERROR, within=10)
    wait_answered(daemon, "n7.refused.test", dns.rcode.NXDOMAIN, within=5)
    assert metric(scrape(mport), "filterd_upstream_up", upstream=label) == 1
    assert dashboard_row(daemon, label)["up"] is True

    # 2. An upstream that swallows every query: each forward would wait for its timeout.
    unbound.stop()
    hole = Blackhole(unbound.port)
    try:
        load = flood(daemon.address, SECONDS, QPS, "silent.test")
    finally:
        hole.close()
    assert load.unanswered == 0, (load, daemon.logtext()[-3000:])
    assert load.rcodes == {SERVFAIL: load.sent}
    # Marked down after a few timeouts, it is only probed: queries do not queue behind it.
    assert hole.received < load.sent // 4, (hole.received, load.sent)
    assert metric(scrape(mport), "filterd_upstream_up", upstream=label) == 0
    unbound.start()
    wait_answered(daemon, "n9.silent.test", dns.rcode.NXDOMAIN, within=10)
    assert daemon.ask("allowed.test").rcode() == dns.rcode.NOERROR
    assert metric(scrape(mport), "filterd_upstream_up", upstream=label) == 1

    growth_mb = (rss_kb(daemon.proc.pid) - rss_before) / 1024
    assert growth_mb < 40, f"RSS grew {growth_mb:.0f} MB over two outages"
    outage_log = daemon.logtext()[log_start:]
    # One line per state change (down, up; twice), nothing per query.
    assert_quiet_log(outage_log, max_lines=12, what="upstream outage")
    assert "down" in outage_log and "answers again" in outage_log, outage_log
