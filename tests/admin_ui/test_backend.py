"""Backend: reload through the control channel (the daemon's own record), paths, overrides."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from admin_ui.backend import Backend, _Overlay
from admin_ui.errors import AdminError
from tests.admin_ui import fakes


def test_reload_without_daemon(backend):
    result = backend.reload()
    assert not result.ok and "not running" in result.message


def test_reload_signals_the_pid_in_the_pid_file(backend, fake_daemon):
    result = backend.reload()
    assert result.ok and result.pid == fake_daemon.pid
    assert fake_daemon.hups() == 1


def test_stale_pid_file_is_not_running(backend):
    backend.data_dir.mkdir(parents=True, exist_ok=True)
    (backend.data_dir / "filterd.pid").write_text("999999999\n")
    assert backend.daemon_pid() is None


def _with_metrics(config, port):
    cfg = _Overlay(config, metrics=SimpleNamespace(listen=("127.0.0.1", port)))
    return Backend(cfg, engine_factory=fakes.fake_build_engine)


def test_refused_reload_is_reported_with_the_loaders_message(backend, fake_daemon):
    (backend.data_dir / "refuse").write_text("unknown category 'gmes'")
    result = backend.reload(wait=10)
    assert not result.ok and result.status == "refused"
    assert "policies/thcs.yaml:7: unknown category 'gmes'" in result.message
    assert backend.last_outcome().status == "refused"


def test_a_daemon_that_does_not_answer_is_not_reported_as_reloaded(backend, tmp_path):
    import subprocess
    import sys
    import time

    backend.data_dir.mkdir(parents=True, exist_ok=True)
    # Alive, ignores SIGHUP, never records an outcome: the old check (pid alive) said "ok".
    pid_file = backend.data_dir / "filterd.pid"
    proc = subprocess.Popen([sys.executable, "-c",
                             "import os, signal, sys, time; signal.signal(signal.SIGHUP,"
                             " signal.SIG_IGN); open(sys.argv[1], 'w').write(str(os.getpid()));"
                             " time.sleep(60)", str(pid_file)])
    try:
        for _ in range(500):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.02)
        result = backend.reload(wait=1.5)
        assert not result.ok and result.status == "no_answer"
    finally:
        proc.kill()
        proc.wait(10)


def test_policy_path_refuses_escapes(backend):
    for bad in ("../x.yaml", "a/b.yaml", ".x.yaml", "x.txt", ""):
        with pytest.raises(AdminError):
            backend.policy_path(bad)
    assert backend.policy_path("groups.yaml").name == "groups.yaml"


def test_broken_overrides_file_is_an_error(backend):
    backend.data_dir.mkdir(parents=True, exist_ok=True)
    backend.overrides_path.write_text("{not json")
    with pytest.raises(AdminError):
        backend.read_overrides()


def test_engine_is_rebuilt_when_a_policy_file_changes(backend, policy_file):
    first = backend.engine()
    assert backend.engine() is first
    policy_file.write_text(policy_file.read_text().replace("Giáo viên", "Nhân viên"))
    second = backend.engine()
    assert second is not first and second.groups["staff"].label_vi == "Nhân viên"


def test_broken_policy_keeps_the_last_good_engine(backend, policy_file):
    good = backend.engine()
    policy_file.write_text("groups:\n  x:\n    colour: red\n")
    assert backend.engine() is good


def test_upstream_health_from_metrics(config):
    text = (b'filterd_upstream_latency_seconds_count{upstream="1.1.1.1:53"} 40\n'
            b'filterd_upstream_errors_total{upstream="1.1.1.1:53"} 2\n'
            b'filterd_upstream_errors_total{upstream="8.8.8.8:53"} 5\n'
            b'filterd_upstream_up{upstream="1.1.1.1:53"} 1\n'
            b'filterd_upstream_up{upstream="8.8.8.8:53"} 0\n'
            b'# HELP x y\nfilterd_reloads_total{result="ok"} 3\n')

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *_a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        be = _with_metrics(config, server.server_address[1])
        assert be.upstream_health() == [
            {"upstream": "1.1.1.1:53", "answers": 40, "errors": 2, "up": True},
            {"upstream": "8.8.8.8:53", "answers": 0, "errors": 5, "up": False}]
    finally:
        server.shutdown()
        server.server_close()
    assert Backend(config).upstream_health() is None  # endpoint off


def test_concurrent_override_writes_lose_nothing(backend):
    from datetime import UTC, datetime, timedelta

    expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()

    def add(i: int) -> None:
        with backend.overrides_lock():
            items = backend.read_overrides()
            items.append({"id": f"o{i}", "group": "thcs", "domain": f"s{i}.example",
                          "expires_at": expires, "created_by": "t", "reason": "r"})
            backend.write_overrides(items)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o["id"] for o in backend.read_overrides()) == sorted(f"o{i}" for i in range(20))
