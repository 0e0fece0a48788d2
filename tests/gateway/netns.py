"""Network namespaces for the gateway tests: created per test, always deleted.

Traffic stays inside namespaces the test made: 10.99.x.y addresses exist only
there, and no namespace has a route to anything else.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

_seq = itertools.count()


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip"):
        return "iproute2 (ip) is not installed"
    name = f"fdprobe{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True,
                           timeout=20, check=False)
    if probe.returncode != 0:
        return f"`ip netns add` is not available: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20, check=False)
    return None


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 100000}x{next(_seq)}"


@dataclass
class NetNS:
    name: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def cmd(self, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 30,
            **kw: object) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.cmd(args), capture_output=True, text=True, timeout=timeout,
                              check=False, **kw)  # type: ignore[call-overload]
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} in {self.name} failed: "
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def popen(self, args: Sequence[str], **kw: object) -> subprocess.Popen:
        proc = subprocess.Popen(self.cmd(args), **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc


class Namespaces:
    """Creates namespaces and veth pairs; `close()` kills their processes and deletes them."""

    def __init__(self) -> None:
        self.all: list[NetNS] = []

    def add(self, role: str) -> NetNS:
        ns = NetNS(unique(f"fd{role}"))
        subprocess.run(["ip", "netns", "add", ns.name], check=True, timeout=20)
        self.all.append(ns)
        ns.run(["ip", "link", "set", "lo", "up"])
        return ns

    @staticmethod
    def link(a: NetNS, a_if: str, a_addr: str, b: NetNS, b_if: str, b_addr: str) -> None:
        """A veth pair created directly inside the two namespaces (never in the host's)."""
        subprocess.run(["ip", "-n", a.name, "link", "add", a_if, "type", "veth", "peer", "name",
                        b_if, "netns", b.name], check=True, timeout=20)
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            ns.run(["ip", "addr", "add", addr, "dev", ifname])
            ns.run(["ip", "link", "set", ifname, "up"])

    def close(self) -> None:
        for ns in self.all:
            for proc in ns.procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)
        for ns in self.all:
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=20,
                           check=False)
        self.all.clear()


@dataclass
class Lab:
    """client (10.99.1.2) -> gateway (lan0 10.99.1.1 | wan0 10.99.2.1) -> upstream (10.99.2.2)."""

    client: NetNS
    gw: NetNS
    upstream: NetNS
    client_ip: str = "10.99.1.2"
    gw_lan_ip: str = "10.99.1.1"
    gw_wan_ip: str = "10.99.2.1"
    upstream_ip: str = "10.99.2.2"
    lan_if: str = "lan0"


def build_lab(spaces: Namespaces) -> Lab:
    client, gw, upstream = spaces.add("cl"), spaces.add("gw"), spaces.add("up")
    lab = Lab(client, gw, upstream)
    spaces.link(gw, "lan0", f"{lab.gw_lan_ip}/24", client, "eth0", f"{lab.client_ip}/24")
    spaces.link(gw, "wan0", f"{lab.gw_wan_ip}/24", upstream, "eth0", f"{lab.upstream_ip}/24")
    client.run(["ip", "route", "add", "default", "via", lab.gw_lan_ip])
    upstream.run(["ip", "route", "add", "10.99.1.0/24", "via", lab.gw_wan_ip])
    gw.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    return lab
