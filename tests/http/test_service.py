"""Settings from the configuration, and the HTTP side started by the daemon."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from filterd.errors import ConfigError
from filterd.http.service import HttpSettings

REPO = Path(__file__).resolve().parents[2]


def test_settings_from_core_config(tmp_path):
    http = SimpleNamespace(block_page_listen=("0.0.0.0", 80), proxy_listen=("0.0.0.0", 3128),
                           mode="transparent", intercept_ca_dir=tmp_path / "ca")
    s = HttpSettings.from_config(SimpleNamespace(http=http, data_dir=tmp_path, school_name="X"))
    assert s.blockpage_listen == ("0.0.0.0", 80) and s.mode == "transparent"
    assert s.ca_directory == tmp_path / "ca" and s.data_dir == tmp_path
    assert HttpSettings(data_dir=tmp_path).ca_directory == tmp_path / "ca"


@pytest.mark.parametrize("kw,key", [
    ({"mode": "sideways"}, "http.mode"),
    ({"proxy_listen": ("not-an-ip", 3128)}, "http.proxy_listen"),
    ({"blockpage_listen": ("127.0.0.1", 70000)}, "http.block_listen"),
])
def test_bad_settings_fail_closed(kw, key):
    with pytest.raises(ConfigError) as err:
        HttpSettings(**kw)
    assert err.value.key == key


DAEMON = r"""
import sys
from pathlib import Path
from types import SimpleNamespace
sys.path.insert(0, sys.argv[2])
from conftest import FakeEngine
from filterd import daemon
data = Path(sys.argv[1])
def load():
    # a real filterd.yaml through the real loader: every section the daemon reads exists
    from filterd.config import load_config
    cfg = data / "filterd.yaml"
    cfg.write_text(
        f"data_dir: {data}\nappliance_ipv4: 127.0.0.1\n"
        "dns:\n  listen: ['127.0.0.1:0']\n  upstreams: ['127.0.0.1:9']\n"
        "  upstream_timeout: 0.5\n  cache_size: 100\n  cache_max_ttl: 60\n"
        "events:\n  flush_interval: 0.1\n  queue_max: 1000\n"
        "http:\n  block_page_listen: '127.0.0.1:0'\n  proxy_listen: '127.0.0.1:0'\n")
    return load_config(cfg)
daemon.configure_logging()
raise SystemExit(daemon.run(load(), load_config=load, engine_factory=lambda c: FakeEngine()))
"""


@pytest.mark.integration
def test_daemon_serves_http_and_logs_to_the_event_log(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(tmp_path), str(REPO / "tests/http")],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "filterd HTTP serving" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "daemon exited"
        ports = dict(re.findall(r"(\w+) 127\.0\.0\.1:(\d+)", line))
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "-x",
                              f"http://127.0.0.1:{ports['proxy']}", "http://casino.test/"],
                             capture_output=True, timeout=20)
        assert "Cờ bạc".encode() in out.stdout
        page = subprocess.run(["curl", "-sS", "--max-time", "10", "-H", "Host: blocked.test",
                               f"http://127.0.0.1:{ports['blockpage']}/"],
                              capture_output=True, timeout=20)
        assert "Nội dung người lớn".encode() in page.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    import sqlite3

    rows = sqlite3.connect(tmp_path / "filterd.db").execute(
        "SELECT name, path, category FROM events").fetchall()
    assert ("casino.test", "http", "gambling") in rows


@pytest.mark.integration
def test_filterd_proxy_with_the_real_engine_and_seed_lists(tmp_path):
    """`filterd proxy` end to end: real config, real policy engine, seed list index."""
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'var'}\n"
                   "http: {block_page_listen: '127.0.0.1:0', proxy_listen: '127.0.0.1:0'}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "filterd", "proxy", "--config", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        ports = {}
        deadline = time.monotonic() + 90
        while "proxy" not in ports and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
            m = re.match(r"(\w+): 127\.0\.0\.1:(\d+)", line)
            if m:
                ports[m.group(1)] = int(m.group(2))
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "-x",
                              f"http://127.0.0.1:{ports['proxy']}", "-w", "%{http_code}",
                              "http://pornhub.com/"], capture_output=True, timeout=20)
        assert out.stdout.endswith(b"403")
        assert "Nội dung người lớn".encode() in out.stdout
        tls = subprocess.run(["curl", "-sS", "--max-time", "10", "-x",
                              f"http://127.0.0.1:{ports['proxy']}", "https://pornhub.com/"],
                             capture_output=True, timeout=20)
        assert tls.returncode == 35
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    import sqlite3

    rows = sqlite3.connect(tmp_path / "var" / "filterd.db").execute(
        "SELECT name, path, category, source FROM events ORDER BY id").fetchall()
    assert rows == [("pornhub.com", "http", "adult", "list seed-adult (version seed)"),
                    ("pornhub.com", "sni", "adult", "list seed-adult (version seed)")]
