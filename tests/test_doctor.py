"""`filterd doctor`: every check against real servers on loopback, and with faults."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound, free_port

from filterd.config import load_config
from filterd.doctor import (
    Status,
    check_ca,
    check_clock,
    check_daemon,
    check_disk,
    check_lists,
    check_office,
    check_sync,
    check_upstreams,
    kernel_clock_synced,
)

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


@pytest.fixture
def listeners():
    socks = []

    def make() -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
        return s.getsockname()[1]

    yield make
    for s in socks:
        s.close()


class NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def office():
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def _config(tmp: Path, dns_port: int, upstream: tuple[str, int], block: int, admin: int,
            office_url: str = ""):
    cfg = tmp / "filterd.yaml"
    cfg.write_text(f"""
data_dir: {tmp / "var"}
dns:
  listen: ["127.0.0.1:{dns_port}"]
  upstreams: ["{upstream[0]}:{upstream[1]}"]
  upstream_timeout: 1.0
http:
  block_page_listen: "127.0.0.1:{block}"
admin:
  listen: "127.0.0.1:{admin}"
sync:
  office_url: "{office_url}"
""")
    return cfg


def test_ports_and_upstreams_real_and_broken(tmp_path, unbound, listeners) -> None:
    closed = free_port()
    good = load_config(_config(tmp_path, unbound.port, unbound.address, listeners(),
                               listeners()))
    assert [c.status for c in check_daemon(good)] == [Status.OK] * 3
    assert [c.status for c in check_upstreams(good)] == [Status.OK]

    bad = load_config(_config(tmp_path, closed, ("127.0.0.1", closed), closed, listeners()))
    daemon = check_daemon(bad)
    assert [c.status for c in daemon] == [Status.FAIL, Status.FAIL, Status.OK]
    assert "systemctl start filterd" in daemon[0].fix
    upstream = check_upstreams(bad)[0]
    assert upstream.status is Status.FAIL and "port 53" in upstream.fix


def _runner(outputs: dict[str, tuple[int, str]]):
    return lambda argv: outputs.get(argv[0], (127, ""))


def test_clock_sources_in_order() -> None:
    never = lambda: pytest.fail("kernel asked although timedatectl answered")  # noqa: E731
    assert check_clock(_runner({"timedatectl": (0, "yes\n")}), never).status is Status.OK
    off = check_clock(_runner({"timedatectl": (0, "no\n")}), never)
    assert off.status is Status.FAIL and "set-ntp" in off.fix
    chrony = "Reference ID    : 7F7F0101 ()\nLeap status     : Normal\n"
    assert check_clock(_runner({"chronyc": (0, chrony)}), lambda: False).status is Status.OK
    unsynced = chrony.replace("Normal", "Not synchronised")
    assert check_clock(_runner({"chronyc": (0, unsynced)}), lambda: True).status is Status.FAIL
    assert check_clock(_runner({}), lambda: True).status is Status.OK
    assert check_clock(_runner({}), lambda: None).status is Status.WARN


def test_kernel_clock_reads_adjtimex() -> None:
    assert kernel_clock_synced() in (True, False)


def test_list_freshness(tmp_path) -> None:
    cfg = load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1))
    assert check_lists(cfg).status is Status.FAIL
    current = cfg.data_dir / "lists" / "current"
    current.parent.mkdir(parents=True)
    current.write_text("index")
    assert check_lists(cfg).status is Status.OK
    old = time.time() - 5 * 86400
    os.utime(current, (old, old))
    assert check_lists(cfg).status is Status.WARN
    old = time.time() - 30 * 86400
    os.utime(current, (old, old))
    assert check_lists(cfg).status is Status.FAIL


def test_disk_space(tmp_path) -> None:
    cfg = load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1))
    Usage = namedtuple("Usage", "total used free")
    assert check_disk(cfg).status is Status.OK  # the real disk of this machine
    full = check_disk(cfg, usage=lambda p: Usage(32 * 2**30, 32 * 2**30 - 100 * 2**20,
                                                 100 * 2**20))
    assert full.status is Status.FAIL and "retention_days" in full.fix


def test_school_ca(tmp_path) -> None:
    from filterd.http.ca import ensure_ca

    cfg = load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1))
    assert check_ca(cfg).status is Status.WARN
    ensure_ca(cfg.http.intercept_ca_dir, "Trường thử")
    assert check_ca(cfg).status is Status.OK
    assert check_ca(cfg, now=datetime.now(UTC) + timedelta(days=365 * 30)).status is Status.FAIL
    (cfg.http.intercept_ca_dir / "filterd-ca.pem").write_text("garbage")
    assert check_ca(cfg).status is Status.FAIL


def test_office_reachability(tmp_path, office) -> None:
    none = load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1))
    assert check_office(none).status is Status.SKIP
    up = load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1, office_url=office))
    assert check_office(up).status is Status.OK
    closed = f"http://127.0.0.1:{free_port()}/api"
    down = load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1, office_url=closed))
    assert check_office(down, timeout=2).status is Status.FAIL


def test_daily_upload(tmp_path, office) -> None:
    assert check_sync(load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1))).status \
        is Status.SKIP
    cfg = load_config(_config(tmp_path, 1, ("127.0.0.1", 1), 1, 1, office_url=office))
    never = check_sync(cfg)
    assert never.status is Status.WARN and "filterd-sync" in never.fix
    state = cfg.data_dir / "sync" / "state.json"
    state.parent.mkdir(parents=True)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    state.write_text('{"last_success_at": "2026-11-24T18:30:00+00:00"}')
    assert check_sync(cfg, now=now).status is Status.OK
    state.write_text('{"last_success_at": "2026-11-20T18:30:00+00:00", '
                     '"last_error": "office answered 503"}')
    late = check_sync(cfg, now=now)
    assert late.status is Status.WARN and "503" in late.detail


def test_cli_exit_code(tmp_path, unbound, listeners) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    skip = ["--skip", "clock", "--skip", "rules", "--skip", "ca", "--skip", "lists"]
    good = _config(tmp_path, unbound.port, unbound.address, listeners(), listeners())
    ok = subprocess.run([sys.executable, "-m", "filterd", "doctor", "--config", str(good), *skip],
                        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all checks passed" in ok.stdout
    closed = free_port()
    bad = _config(tmp_path, unbound.port, ("127.0.0.1", closed), listeners(), listeners())
    fail = subprocess.run([sys.executable, "-m", "filterd", "doctor", "--config", str(bad), *skip],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert fail.returncode == 1
    assert f"FAIL upstream 127.0.0.1:{closed}" in fail.stdout and "fix:" in fail.stdout


def test_gateway_rules_without_root_says_it_cannot_tell() -> None:
    from filterd.doctor import check_gateway_rules

    check = check_gateway_rules(euid=1000)
    assert check.status is Status.SKIP and "root" in check.detail
