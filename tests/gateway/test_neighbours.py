from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from filterd.gateway.neighbours import (
    KernelNeighbours,
    parse_ip_neigh_json,
    parse_proc_arp,
)
from tests.gateway.netns import Lab

REPO = Path(__file__).resolve().parents[2]

NEIGH_JSON = """[
 {"dst":"10.99.1.2","dev":"lan0","lladdr":"AA:BB:CC:00:11:22","state":["REACHABLE"]},
 {"dst":"10.99.1.3","dev":"lan0","lladdr":"aa:bb:cc:00:11:33","state":["STALE"]},
 {"dst":"10.99.1.4","dev":"lan0","state":["FAILED"]},
 {"dst":"10.99.1.5","dev":"lan0","lladdr":"aa:bb:cc:00:11:55","state":["INCOMPLETE"]},
 {"dst":"fe80::1","dev":"lan0","lladdr":"aa:bb:cc:00:11:66","router":null,"state":["STALE"]},
 {"dst":"192.0.2.9","dev":"wan0","lladdr":"aa:bb:cc:00:11:99","state":["REACHABLE"]}
]"""

PROC_ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.99.1.2        0x1         0x2         aa:bb:cc:00:11:22     *        lan0
10.99.1.7        0x1         0x0         00:00:00:00:00:00     *        lan0
192.0.2.9        0x1         0x2         aa:bb:cc:00:11:99     *        wan0
"""


def test_parse_ip_neigh_json_skips_unusable_entries() -> None:
    table = parse_ip_neigh_json(NEIGH_JSON)
    assert table["10.99.1.2"] == "aa:bb:cc:00:11:22"
    assert table["10.99.1.3"] == "aa:bb:cc:00:11:33"
    assert "10.99.1.4" not in table and "10.99.1.5" not in table
    assert table["fe80::1"] == "aa:bb:cc:00:11:66"
    assert "192.0.2.9" not in parse_ip_neigh_json(NEIGH_JSON, device="lan0")


def test_parse_proc_arp() -> None:
    table = parse_proc_arp(PROC_ARP, device="lan0")
    assert table == {"10.99.1.2": "aa:bb:cc:00:11:22"}


def test_new_lease_maps_to_the_same_mac_after_refresh() -> None:
    """A device moves from .2 to .20 (new DHCP lease): the MAC follows after a refresh."""
    kernel = {"10.99.1.2": "aa:bb:cc:00:11:22"}
    calls = threading.Event()

    def source() -> dict[str, str]:
        calls.set()
        return dict(kernel)

    table = KernelNeighbours(interval=3600, source=source, miss_refresh_after=0).start()
    try:
        assert table.mac_for("10.99.1.2") == "aa:bb:cc:00:11:22"
        assert table.mac_for("::ffff:10.99.1.2") == "aa:bb:cc:00:11:22"
        kernel.clear()
        kernel["10.99.1.20"] = "aa:bb:cc:00:11:22"
        calls.clear()
        assert table.mac_for("10.99.1.20") is None  # not yet: the miss asks for a refresh
        assert calls.wait(10)
        deadline = time.monotonic() + 10
        while table.mac_for("10.99.1.20") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert table.mac_for("10.99.1.20") == "aa:bb:cc:00:11:22"
        assert table.mac_for("10.99.1.2") is None  # the old lease is gone with the kernel's entry
    finally:
        table.close()


def test_ipv4_miss_reads_the_arp_table_at_once() -> None:
    arp = {"10.99.1.20": "aa:bb:cc:00:11:22"}
    reads = []

    def quick() -> dict[str, str]:
        reads.append(1)
        return dict(arp)

    table = KernelNeighbours(source=dict, quick_source=quick, quick_every=3600)
    table.refresh()
    assert table.mac_for("10.99.1.20") == "aa:bb:cc:00:11:22"  # first query after the lease
    assert table.mac_for("10.99.1.20") == "aa:bb:cc:00:11:22" and len(reads) == 1
    assert table.mac_for("10.99.1.21") is None and len(reads) == 1  # rate-limited
    assert table.mac_for("fd99::20") is None and len(reads) == 1  # IPv6: no ARP


def test_just_booted_gateway_reads_the_arp_table_at_once(monkeypatch) -> None:
    """Monotonic time starts near 0 at boot: the rate limit must not hold the first read."""
    import filterd.gateway.neighbours as neighbours

    monkeypatch.setattr(neighbours.time, "monotonic", lambda: 3.0)
    table = KernelNeighbours(source=dict, quick_source=lambda: {"10.99.1.20": "aa:bb:cc:00:11:22"},
                             quick_every=3600)
    table.refresh()
    assert table.mac_for("10.99.1.20") == "aa:bb:cc:00:11:22"


def test_failed_refresh_keeps_the_last_table() -> None:
    state = {"fail": False}

    def source() -> dict[str, str]:
        if state["fail"]:
            raise OSError("ip: command failed")
        return {"10.99.1.2": "aa:bb:cc:00:11:22"}

    table = KernelNeighbours(source=source)
    table.refresh()
    state["fail"] = True
    table.refresh()
    assert table.mac_for("10.99.1.2") == "aa:bb:cc:00:11:22"
    assert table.mac_for("not an ip") is None


def test_real_kernel_table_in_a_namespace(lab: Lab) -> None:
    """The client's real MAC, as the gateway's kernel learnt it from a ping."""
    lab.client.run(["ping", "-c", "1", "-W", "5", lab.gw_lan_ip])
    mac = lab.client.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    code = ("import json; from filterd.gateway.neighbours import read_kernel_table;"
            "print(json.dumps(read_kernel_table('lan0')))")
    out = lab.gw.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert json.loads(out.stdout) == {lab.client_ip: mac}
