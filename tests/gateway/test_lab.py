"""The whole gateway for real: client -> gateway -> upstream in three network namespaces.

The gateway namespace runs `filterd run` (DNS, block page, transparent proxy), the
nftables rules from `filterd gateway apply` and the bypass monitor; the upstream
namespace runs unbound (and listeners on 853 and on a "DoH resolver" address).
Shown: a client that asks the upstream's address directly still gets filtered answers;
DoT and DoH to the upstream are refused and logged as bypass attempts; transparent
HTTP to a blocked name gets the block page. Only 10.99.x.y addresses inside the
namespaces made here are used.
"""

from __future__ import annotations

import os
import queue
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.gateway.netns import Lab, NetNS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
DOH_IP = "10.99.2.3"
BLOCKED = "pornhub.com"          # in the shipped seed list (adult)
GAME = "roblox.com"              # seed list games: blocked for unknown devices, not for staff
UPSTREAM_BLOCKED_ANSWER = "192.0.2.66"  # what the upstream would say for it, unfiltered


def _need(*tools: str) -> None:
    import shutil

    for tool in tools:
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")


class Lines:
    """Lines of a child's pipe, read by a thread (select on a buffered text pipe loses lines)."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line)

    def wait(self, needle: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                continue
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} within {timeout}s; got:\n"
                             f"{''.join(self.seen)[-3000:]}")


def _unbound(ns: NetNS, tmp: Path, ip: str) -> None:
    conf = tmp / "unbound.conf"
    conf.write_text("\n".join([
        "server:", f"  interface: {ip}", "  port: 53", "  do-ip6: no", "  do-daemonize: no",
        '  username: ""', '  chroot: ""', f'  directory: "{tmp}"', '  pidfile: ""',
        "  use-syslog: no", '  logfile: ""', "  verbosity: 0", "  num-threads: 1",
        "  access-control: 10.99.0.0/16 allow", '  module-config: "iterator"',
        '  local-zone: "." static',
        '  local-data: "allowed.test. 300 IN A 192.0.2.10"',
        f'  local-data: "{BLOCKED}. 300 IN A {UPSTREAM_BLOCKED_ANSWER}"',
        f'  local-data: "{GAME}. 300 IN A 192.0.2.77"',
        "remote-control:", "  control-enable: no", ""]))
    ns.popen(["unbound", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
             stderr=subprocess.DEVNULL)


LISTENER = """
import socket, sys, threading
def serve(ip, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port)); s.listen()
    while True:
        c, a = s.accept(); print(f"accepted {ip}:{port} from {a[0]}", flush=True); c.close()
for spec in sys.argv[1:]:
    ip, port = spec.rsplit(":", 1)
    threading.Thread(target=serve, args=(ip, int(port)), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""


def _dig(lab: Lab, server: str, name: str, tcp: bool = False) -> str:
    args = ["dig", "+short", "+time=3", "+tries=2", f"@{server}", name, "A"]
    if tcp:
        args.insert(1, "+tcp")
    return lab.client.run(args, timeout=30).stdout.strip()


def _connect(lab: Lab, ip: str, port: int) -> str:
    code = ("import socket,sys\n"
            "try:\n"
            f"    socket.create_connection(('{ip}', {port}), timeout=5).close()\n"
            "    print('connected')\n"
            "except ConnectionRefusedError: print('refused')\n"
            "except OSError as e: print('error', e)\n")
    return lab.client.run([sys.executable, "-c", code], timeout=30).stdout.strip()


def test_gateway_filters_whatever_resolver_and_logs_bypass(lab: Lab, tmp_path: Path) -> None:
    _need("unbound", "dig", "nft", "curl")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lab.upstream.run(["ip", "addr", "add", f"{DOH_IP}/24", "dev", "eth0"])
    _unbound(lab.upstream, tmp_path, lab.upstream_ip)
    listener = lab.upstream.popen([sys.executable, "-c", LISTENER, f"{lab.upstream_ip}:853",
                                   f"{DOH_IP}:443", f"{lab.upstream_ip}:80"],
                                  stdout=subprocess.PIPE, text=True)
    upstream_log = Lines(listener.stdout)
    upstream_log.wait("listening", 30)

    data = tmp_path / "var"
    config = tmp_path / "filterd.yaml"
    config.write_text(f"""
school_id: lab-school
data_dir: {data}
appliance_ipv4: {lab.gw_lan_ip}
dns:
  listen: ["0.0.0.0:53"]
  upstreams: ["{lab.upstream_ip}:53"]
  upstream_timeout: 1.0
events:
  flush_interval: 0.1
http:
  block_page_listen: "{lab.gw_lan_ip}:80"
  proxy_listen: "0.0.0.0:3128"
  mode: transparent
admin:
  listen: "127.0.0.1:8081"
metrics:
  listen: "127.0.0.1:9154"
""")
    doh = tmp_path / "doh-ips.txt"
    doh.write_text(f"{DOH_IP}\n")
    verdict = subprocess.run([sys.executable, "-m", "filterd", "check", BLOCKED, "--client",
                              lab.client_ip, "--config", str(config)], capture_output=True,
                             text=True, timeout=120, env=env, check=False)
    assert verdict.stdout.startswith("Đã chặn"), verdict.stdout + verdict.stderr  # "blocked"

    daemon = lab.gw.popen([sys.executable, "-m", "filterd", "run", "--config", str(config)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    Lines(daemon.stderr).wait("filterd DNS serving", 120)
    lab.gw.run([sys.executable, "-m", "filterd", "gateway", "apply", "--design", "router",
                "--lan", lab.lan_if, "--transparent-http", "--proxy-port", "3128",
                "--doh-list", str(doh)], env=env, timeout=60)
    monitor = lab.gw.popen([sys.executable, "-m", "filterd", "gateway", "monitor", "--lan",
                            lab.lan_if, "--config", str(config), "--doh-list", str(doh),
                            "--print"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    Lines(monitor.stderr).wait("monitoring", 60)
    attempts = Lines(monitor.stdout)

    # 1. asking the upstream directly still goes through filterd
    assert _dig(lab, lab.upstream_ip, "allowed.test") == "192.0.2.10"
    direct = _dig(lab, lab.upstream_ip, BLOCKED)
    assert UPSTREAM_BLOCKED_ANSWER not in direct
    assert direct in ("", lab.gw_lan_ip, "0.0.0.0"), direct
    assert UPSTREAM_BLOCKED_ANSWER not in _dig(lab, lab.upstream_ip, BLOCKED, tcp=True)
    assert UPSTREAM_BLOCKED_ANSWER not in _dig(lab, "10.99.2.77", BLOCKED)  # any resolver

    # 2. DoT and DoH are refused by the gateway (the upstream's listeners see nothing)
    assert _connect(lab, lab.upstream_ip, 853) == "refused"
    assert _connect(lab, DOH_IP, 443) == "refused"
    assert _connect(lab, lab.upstream_ip, 80) == "connected"  # via the transparent proxy
    assert _dig(lab, lab.gw_lan_ip, GAME) != "192.0.2.77"    # an unknown device: games blocked

    seen = {attempts.wait(kind).split()[-1].split("/")[0]
            for kind in ("dot to", "doh to")}
    assert seen == {f"{lab.upstream_ip}:853", f"{DOH_IP}:443"}
    rows = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sqlite3.connect(data / "filterd.db", timeout=10) as db:
            rows = db.execute("SELECT client_ip, qtype, action, name FROM events "
                              "WHERE path = 'bypass'").fetchall()
        if {r[1] for r in rows} >= {"DOT", "DOH", "DNS"}:
            break
        time.sleep(0.2)
    kinds = {r[1]: r for r in rows}
    assert kinds["DOT"] == (lab.client_ip, "DOT", "block", lab.upstream_ip)
    assert kinds["DOH"] == (lab.client_ip, "DOH", "block", DOH_IP)
    assert kinds["DNS"][2] == "rewrite"  # answered by filterd instead of the other resolver
    # the monitor's counts reach the daemon's Prometheus endpoint
    scrape = lab.gw.run([sys.executable, "-c", "import urllib.request; print(urllib.request."
                         "urlopen('http://127.0.0.1:9154/metrics', timeout=10).read().decode())"])
    for kind in ("dot", "doh"):
        assert f'filterd_bypass_attempts_total{{kind="{kind}"}} 1' in scrape.stdout, scrape.stdout

    # 3. transparent HTTP to a blocked name gets the block page
    page = lab.client.run(["curl", "-sS", "--max-time", "10", "-w", "%{http_code}",
                           "--resolve", f"{BLOCKED}:80:{lab.upstream_ip}",
                           f"http://{BLOCKED}/"], check=False, timeout=30)
    assert page.stdout.endswith("403"), page.stdout[-500:] + page.stderr
    assert "111" in page.stdout  # the child-protection hotline is on the block page

    counters = lab.gw.run(["nft", "list", "table", "inet", "filterd"]).stdout
    redirected = [int(n) for n in re.findall(r"counter packets (\d+) bytes \d+ redirect to :53",
                                             counters)]
    dot = [int(n) for n in re.findall(r"dport 853 counter packets (\d+)", counters)]
    assert sum(redirected) >= 4 and sum(dot) >= 1, counters
    while not upstream_log.queue.empty():
        upstream_log.seen.append(upstream_log.queue.get())
    accepted = "".join(upstream_log.seen)
    assert f"accepted {lab.upstream_ip}:80" not in accepted  # HTTP went to the proxy
    assert ":853" not in accepted and f"{DOH_IP}:443" not in accepted


def test_mac_group_follows_the_device_to_a_new_address(lab: Lab, tmp_path: Path) -> None:
    """A device listed by MAC in the staff group keeps that group after DHCP moves it."""
    import shutil

    _need("unbound", "dig")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    _unbound(lab.upstream, tmp_path, lab.upstream_ip)
    mac = lab.client.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    policy = policies / "policy.yaml"
    anchor = "      - 10.10.1.10 "
    assert anchor in policy.read_text()
    policy.write_text(policy.read_text().replace(anchor, f"      - {mac}\n{anchor}", 1))
    config = tmp_path / "filterd.yaml"
    config.write_text(f"""
data_dir: {tmp_path / "var"}
policy_dir: {policies}
appliance_ipv4: {lab.gw_lan_ip}
dns:
  listen: ["{lab.gw_lan_ip}:53"]
  upstreams: ["{lab.upstream_ip}:53"]
http:
  block_page_listen: "127.0.0.1:0"
  proxy_listen: "127.0.0.1:0"
""")
    daemon = lab.gw.popen([sys.executable, "-m", "filterd", "run", "--config", str(config)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    Lines(daemon.stderr).wait("filterd DNS serving", 120)
    assert _dig(lab, lab.gw_lan_ip, GAME) == "192.0.2.77"   # staff by MAC: allowed

    # DHCP gives the device a new address: same MAC, same group as soon as the gateway's
    # kernel has seen the new address (the first answer may go out before it has)
    lab.client.run(["ip", "addr", "flush", "dev", "eth0"])
    lab.client.run(["ip", "addr", "add", "10.99.1.20/24", "dev", "eth0"])
    lab.client.run(["ip", "route", "replace", "default", "via", lab.gw_lan_ip])
    answers = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "192.0.2.77" not in answers:
        answers.append(_dig(lab, lab.gw_lan_ip, GAME))
        time.sleep(0.5)
    assert answers[-1] == "192.0.2.77", answers

    # another device (another MAC) at the old address is not staff
    lab.client.run(["ip", "link", "set", "eth0", "address", "02:99:00:00:00:01"])
    lab.gw.run(["ip", "neigh", "flush", "dev", lab.lan_if])
    lab.client.run(["ip", "addr", "flush", "dev", "eth0"])
    lab.client.run(["ip", "addr", "add", f"{lab.client_ip}/24", "dev", "eth0"])
    lab.client.run(["ip", "route", "replace", "default", "via", lab.gw_lan_ip])
    answers = []
    deadline = time.monotonic() + 20  # the table is re-read every 5 s
    while time.monotonic() < deadline and lab.gw_lan_ip not in answers:
        answers.append(_dig(lab, lab.gw_lan_ip, GAME))
        time.sleep(0.5)
    assert answers[-1] == lab.gw_lan_ip, answers  # blocked: the block page address
