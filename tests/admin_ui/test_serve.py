"""Served by waitress on loopback; accounts from the command line."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request

import pytest

from admin_ui.accounts import authenticate
from admin_ui.serve import add_user, make_server
from admin_ui.store import open_admin_db
from tests.admin_ui.conftest import REPO


@pytest.mark.integration
# closing waitress's socket while its loop sits in select() may end that loop with EBADF
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_waitress_serves_the_first_run_page(backend):
    server = make_server(backend.config, listen=("127.0.0.1", 0),
                         test_config={"FILTERD_BACKEND": backend})
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.effective_port}/"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read().decode()
            assert resp.url.endswith("/setup")
            assert resp.headers["Server"] == "filterd-admin"
        assert "Lần chạy đầu" in body
    finally:
        server.close()
        thread.join(timeout=10)


def test_add_user_from_the_command_line_library(config):
    add_user(config, "thu.ha", "a long password", "admin")
    db = open_admin_db(config.data_dir)
    try:
        assert authenticate(db, "thu.ha", "a long password", "cli").role == "admin"
        assert db.execute("SELECT actor, action FROM audit").fetchone() == ("cli", "account.create")
    finally:
        db.conn.close()


@pytest.mark.integration
def test_cli_create_user_with_real_config(tmp_path):
    pytest.importorskip("filterd.config")
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "filterd", "admin", "create-user", "co.lan",
                          "--role", "teacher", "--groups", "thcs", "--config", str(cfg),
                          "--password-stdin"], input="a long password\n", text=True,
                         capture_output=True, env=env, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "created teacher co.lan" in run.stdout
    again = subprocess.run([sys.executable, "-m", "filterd", "admin", "create-user", "co.lan",
                            "--role", "teacher", "--config", str(cfg), "--password-stdin"],
                           input="a long password\n", text=True, capture_output=True, env=env,
                           timeout=60, cwd=tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_the_unit_serves_with_waitress_supervised_with_the_filter():
    """systemd runs `filterd admin serve` (waitress) as part of filterd.service: started,
    stopped and restarted with the filter, and restarted when it fails."""
    import configparser

    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    cp.read_string((REPO / "systemd" / "filterd-admin.service").read_text())
    assert cp.get("Service", "ExecStart").split()[1:3] == ["admin", "serve"]
    assert cp.get("Service", "Restart") == "on-failure"
    assert "filterd.service" in cp.get("Unit", "PartOf").split()
    assert "filterd.service" in cp.get("Unit", "After").split()
    assert "filterd.service" in cp.get("Install", "WantedBy").split()
    assert cp.get("Service", "CapabilityBoundingSet") == ""


def test_nothing_starts_flasks_development_server():
    import re

    offenders = [str(p.relative_to(REPO)) for p in
                 [*REPO.glob("admin_ui/**/*.py"), *REPO.glob("filterd/**/*.py"),
                  *REPO.glob("systemd/*"), *REPO.glob("scripts/*")]
                 if p.is_file() and re.search(r"\.run\(\s*(host|debug|port)|flask run|"
                                              r"werkzeug\.serving", p.read_text(errors="ignore"))]
    assert offenders == []


@pytest.mark.integration
def test_admin_serve_tells_systemd_it_listens(tmp_path):
    """filterd-admin.service is Type=notify: READY=1 comes only once the port answers, so
    `systemctl start` returns (and `filterd doctor` runs) with the page up."""
    import os
    import socket

    from tests.dns.dnshelpers import free_port

    port = free_port()
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'var'}\n")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(60)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    proc = subprocess.Popen([sys.executable, "-m", "filterd", "admin", "serve", "--config",
                             str(cfg), "--listen", f"127.0.0.1:{port}", "--insecure-cookies"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        message = notify.recv(4096)
        assert b"READY=1" in message and f"127.0.0.1:{port}".encode() in message
        # Ready means listening: the first request after it is answered.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.url.endswith("/setup")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        notify.close()
