"""`filterd run` under a pretend systemd: READY/WATCHDOG/RELOADING over a real notify socket,
and the Prometheus endpoint counting real DNS queries (one worker and two)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound, free_port, wait_dns

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


def _config(tmp: Path, upstream: tuple[str, int], workers: int) -> tuple[Path, int, int]:
    dns_port, metrics_port = free_port(), free_port()
    cfg = tmp / "filterd.yaml"
    cfg.write_text(f"""
data_dir: {tmp / "var"}
dns:
  listen: ["127.0.0.1:{dns_port}"]
  upstreams: ["{upstream[0]}:{upstream[1]}"]
  workers: {workers}
events:
  flush_interval: 0.1
http:
  block_page_listen: "127.0.0.1:0"
  proxy_listen: "127.0.0.1:0"
metrics:
  listen: "127.0.0.1:{metrics_port}"
""")
    return cfg, dns_port, metrics_port


class Notify:
    """The systemd side of sd_notify: a unix datagram socket we read messages from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, timeout: float = 60) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            msg = dict(line.split("=", 1) for line in data.splitlines())
            self.messages.append(msg)
            if key in msg:
                return msg
        raise AssertionError(f"no {key} from the daemon; got {self.messages}")


def _start(tmp: Path, cfg: Path, notify: Notify) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(notify.path),
           "WATCHDOG_USEC": "400000"}  # ping every 0.2 s
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "filterd", "run", "--config", str(cfg)],
                            stdout=log, stderr=log, env=env, cwd=tmp)


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("workers", [1, 2])
def test_notify_watchdog_reload_and_metrics(tmp_path: Path, unbound, workers: int) -> None:
    cfg, dns_port, metrics_port = _config(tmp_path, unbound.address, workers)
    sync_state = tmp_path / "var" / "sync" / "state.json"  # as `filterd sync` leaves it
    sync_state.parent.mkdir(parents=True)
    sync_state.write_text('{"last_success_at": "2026-11-24T18:30:00+00:00"}')
    notify = Notify(tmp_path / "notify.sock")
    proc = _start(tmp_path, cfg, notify)
    try:
        ready = notify.wait_for("READY")
        assert "STATUS" in ready
        assert notify.wait_for("WATCHDOG")["WATCHDOG"] == "1"
        wait_dns(("127.0.0.1", dns_port), "allowed.test")
        for _ in range(3):
            q = dns.message.make_query("allowed.test", "A")
            assert dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=5).rcode() == \
                dns.rcode.NOERROR

        q = dns.message.make_query("pornhub.com", "A")  # the seed lists' adult category
        dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=5)

        deadline = time.monotonic() + 30
        while True:  # with workers the parent merges snapshots written every 2 s
            m = _scrape(metrics_port)
            total = sum(v for (name, _), v in m.items() if name == "filterd_queries_total")
            blocked = sum(v for (name, labels), v in m.items()
                          if name == "filterd_blocks_total" and ("category", "adult") in labels)
            if (total >= 4 and blocked >= 1) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert total >= 4 and blocked == 1, m
        assert m[("filterd_last_sync_timestamp_seconds", ())] == 1795545000.0  # 2026-11-24T18:30Z
        assert m[("filterd_dns_cache_misses_total", ())] >= 1
        assert m[("filterd_dns_cache_hits_total", ())] >= 1
        up = (("upstream", f"{unbound.address[0]}:{unbound.address[1]}"),)
        assert m[("filterd_upstream_latency_seconds_count", up)] >= 1
        assert ("filterd_event_queue_depth", ()) in m
        from filterd.dns import fastpath  # native, or pure when FILTERD_PUREPYTHON=1

        assert m[("filterd_dns_fastpath_info",
                  (("implementation", fastpath.IMPLEMENTATION),))] == 1

        proc.send_signal(signal.SIGHUP)
        assert notify.wait_for("RELOADING")["RELOADING"] == "1"
        assert "READY" in notify.wait_for("READY")
    finally:
        _stop(proc)
    assert proc.returncode == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    assert any("STOPPING" in m for m in notify.messages) or _drain_has(notify, "STOPPING")


def _drain_has(notify: Notify, key: str) -> bool:
    notify.sock.settimeout(1)
    try:
        while True:
            data = notify.sock.recv(4096).decode()
            if f"{key}=" in data:
                return True
    except TimeoutError:
        return False


def test_kernel_neighbours_is_one_per_process() -> None:
    from filterd import daemon

    first = daemon.kernel_neighbours()
    assert daemon.kernel_neighbours() is first
    try:
        daemon._NEIGHBOURS = (-1, first)  # as a forked worker sees its parent's table
        assert daemon.kernel_neighbours() is not first
    finally:
        daemon.kernel_neighbours().close()
        first.close()
        daemon._NEIGHBOURS = None
