"""The control channel against the running daemon: `filterd reload` and `filterd restart`
report what the daemon really did (filterd.state.control), with metrics off and on, one
worker and two; the settings a reload can change reach the block page and dig at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import dns.rcode
import pytest

from tests.dns.dnshelpers import Unbound, free_port, wait_dns
from tests.test_daemon import REPO, THPT, Daemon, addresses

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def unbound(tmp_path_factory):
    u = Unbound(tmp_path_factory.mktemp("unbound")).start()
    yield u
    u.stop()


def cli(d: Daemon, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "filterd", *args, "--config", str(d.config)],
                          capture_output=True, text=True, env=env or d.env(), cwd=d.tmp,
                          timeout=120)


def outcome(d: Daemon) -> dict:
    return json.loads((d.tmp / "var" / "reload.json").read_text())


def serving(d: Daemon) -> Daemon:
    """Until the daemon has recorded its start (DNS, then the HTTP side, are up)."""
    d.wait_for(lambda: (d.tmp / "var" / "reload.json").exists()
               and outcome(d)["kind"] == "start", "no start record", timeout=60)
    return d


def block_page(port: int, host: str, source: str) -> str:
    """GET / for `host` from `source` through the block page server (what a student sees)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/", headers={"Host": host})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def make(tmp_path, upstream, *, workers=1, metrics=False, school="Trường Cũ") -> Daemon:
    extra = f"school_name: {school}\n"
    if metrics:
        extra += f"metrics:\n  listen: 127.0.0.1:{free_port()}\n"
    d = Daemon(tmp_path, upstream, workers=workers, extra=extra)
    d.block_port = free_port()
    text = d.config.read_text().replace("block_page_listen: '127.0.0.1:0'",
                                        f"block_page_listen: '127.0.0.1:{d.block_port}'")
    d.config.write_text(text)
    return d


def set_key(d: Daemon, old: str, new: str) -> None:
    text = d.config.read_text()
    assert old in text
    d.config.write_text(text.replace(old, new))


@pytest.mark.parametrize(("workers", "metrics"), [(1, False), (2, True)],
                         ids=["one-worker-metrics-off", "two-workers-metrics-on"])
def test_reload_reports_ok_refused_and_what_needs_a_restart(tmp_path, unbound, workers,
                                                            metrics):
    d = make(tmp_path, unbound.address, workers=workers, metrics=metrics).start()
    serving(d)
    try:
        wait_dns(d.address, "allowed.test", timeout=30, proc=d.proc)
        start = outcome(d)
        assert start["kind"] == "start" and start["status"] == "ok"
        # A good change: applied, and dig shows it at once.
        d.set_policy("other.test")
        res = cli(d, "reload")
        assert res.returncode == 0, res.stderr
        assert f"reloaded (generation {start['generation'] + 1}" in res.stdout
        assert addresses(d.ask("other.test", source=THPT)) == ["10.0.0.1"]
        # A broken policy: refused, with the loader's file and line, and the old one serves.
        (d.policy_dir / "policy.yaml").write_text(
            "version: 1\ndefault_group: x\ngroups:\n  x:\n    block:\n      always: [nope]\n")
        res = cli(d, "reload")
        assert res.returncode == 1
        assert "reload refused by the running filter" in res.stderr
        assert "policy.yaml:" in res.stderr and "nope" in res.stderr, res.stderr
        rec = outcome(d)
        assert rec["status"] == "refused" and rec["file"].endswith("policy.yaml")
        assert rec["line"] is not None and rec["generation"] == start["generation"] + 2
        assert addresses(d.ask("other.test", source=THPT)) == ["10.0.0.1"]
        d.set_policy("other.test")
        # Settings: the school name takes effect, a listen address needs a restart.
        set_key(d, "school_name: Trường Cũ", "school_name: Trường Mới")
        set_key(d, "upstream_timeout: 0.5", "upstream_timeout: 0.6")
        res = cli(d, "reload")
        assert res.returncode == 0, res.stderr
        assert "now in effect: school_name" in res.stdout
        assert "needs a restart: dns.upstream_timeout" in res.stdout
        rec = outcome(d)
        assert rec["applied"] == ["school_name"]
        assert rec["pending_restart"] == ["dns.upstream_timeout"]
    finally:
        d.stop()


def test_school_name_reaches_the_block_page_without_a_restart(tmp_path, unbound):
    d = make(tmp_path, unbound.address).start()
    serving(d)
    try:
        assert "Trường Cũ" in block_page(d.block_port, "blocked.test", THPT)
        pid = d.proc.pid
        set_key(d, "school_name: Trường Cũ", "school_name: THCS Nguyễn Du")
        res = cli(d, "reload")
        assert res.returncode == 0, res.stderr
        page = block_page(d.block_port, "blocked.test", THPT)
        assert "THCS Nguyễn Du" in page and "Trường Cũ" not in page
        assert d.proc.pid == pid and d.proc.poll() is None
    finally:
        d.stop()


def test_reload_without_a_daemon_says_so(tmp_path, unbound):
    d = make(tmp_path, unbound.address)
    res = cli(d, "reload")
    assert res.returncode == 1 and "the filter is not running" in res.stderr


def test_restart_takes_a_new_listen_address(tmp_path, unbound):
    d = make(tmp_path, unbound.address).start()
    serving(d)
    try:
        pid = d.proc.pid
        new_port = free_port()
        set_key(d, f"127.0.0.1:{d.port}", f"127.0.0.1:{new_port}")
        res = cli(d, "reload")
        assert "needs a restart: dns.listen" in res.stdout, res.stdout + res.stderr
        # A broken file: the restart is refused and the running filter keeps serving.
        good = (d.policy_dir / "policy.yaml").read_text()
        (d.policy_dir / "policy.yaml").write_text("version: 1\ngroups: [x]\n")
        res = cli(d, "restart")
        assert res.returncode == 1 and "restart refused" in res.stderr, res.stderr
        assert d.ask("allowed.test").rcode() == dns.rcode.NOERROR
        (d.policy_dir / "policy.yaml").write_text(good)
        res = cli(d, "restart")
        assert res.returncode == 0, res.stderr
        assert f"restarted (pid {pid}" in res.stdout   # not under systemd: the same process
        d.port = new_port
        wait_dns(d.address, "allowed.test", timeout=30, proc=d.proc)
        assert outcome(d)["kind"] == "start" and outcome(d)["pending_restart"] == []
    finally:
        d.stop()


def test_restart_under_systemd_exits_for_the_unit_to_restart(tmp_path, unbound):
    d = make(tmp_path, unbound.address)
    d.env = lambda: {**os.environ, "PYTHONPATH": str(REPO), "INVOCATION_ID": "0" * 32}
    serving(d.start())
    try:
        os.kill(d.proc.pid, signal.SIGUSR2)
        assert d.proc.wait(30) == 75      # RestartForceExitStatus=75 in filterd.service
    finally:
        d.stop()
    unit = (REPO / "systemd" / "filterd.service").read_text()
    assert "RestartForceExitStatus=75" in unit
