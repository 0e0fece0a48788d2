"""The kernel's neighbour table (ARP / NDP) as a NeighbourTable: `mac_for(ip)`.

MAC-based groups keep working when DHCP hands a device a new address: the
table is re-read from the kernel every `interval` seconds (and soon after a
lookup misses), so the new address maps to the same MAC. Lookups never run a
command: they read the last snapshot, so the DNS path never waits for `ip`.

Source: `ip -j neigh show` (IPv4 and IPv6); the ARP table (IPv4 only) when
iproute2 is missing or fails. The ARP table is read as /proc/self/net/arp: the
daemon's unit has ProcSubset=pid, which hides /proc/net (a link to it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from filterd.policy.clients import normalize_mac

log = logging.getLogger(__name__)

# Entries in these states have no usable link-layer address.
_UNUSABLE = {"FAILED", "INCOMPLETE", "NOARP"}
_ZERO_MAC = "00:00:00:00:00:00"
ARP_FILE = Path("/proc/self/net/arp")


def _canonical_ip(text: str) -> str | None:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr)


def _add(table: dict[str, str], ip: str, mac: str) -> None:
    key = _canonical_ip(ip)
    try:
        norm = normalize_mac(mac)
    except ValueError:
        return
    if key and norm != _ZERO_MAC:
        table[key] = norm


def parse_ip_neigh_json(text: str, device: str | None = None) -> dict[str, str]:
    """`ip -j neigh show` output -> {ip: mac}, skipping failed/incomplete entries."""
    table: dict[str, str] = {}
    for entry in json.loads(text or "[]"):
        if device and entry.get("dev") != device:
            continue
        if _UNUSABLE & set(entry.get("state", ())) or "lladdr" not in entry:
            continue
        _add(table, entry.get("dst", ""), entry["lladdr"])
    return table


def parse_proc_arp(text: str, device: str | None = None) -> dict[str, str]:
    """/proc/net/arp -> {ip: mac}; flags 0x0 means incomplete."""
    table: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 6 or cols[2] == "0x0":
            continue
        if device and cols[5] != device:
            continue
        _add(table, cols[0], cols[3])
    return table


def read_proc_arp(device: str | None = None) -> dict[str, str]:
    return parse_proc_arp(ARP_FILE.read_text(), device)


def read_kernel_table(device: str | None = None, *, timeout: float = 5.0) -> dict[str, str]:
    ip = shutil.which("ip") or ("/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else None)
    if ip:
        proc = subprocess.run([ip, "-j", "neigh", "show"], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode == 0:
            return parse_ip_neigh_json(proc.stdout, device)
    return read_proc_arp(device)


class KernelNeighbours:
    """A NeighbourTable refreshed from the kernel in a background thread."""

    def __init__(self, interval: float = 30.0, *, device: str | None = None,
                 source: Callable[[], Mapping[str, str]] | None = None,
                 quick_source: Callable[[], Mapping[str, str]] | None = None,
                 miss_refresh_after: float = 2.0, quick_every: float = 0.5) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.miss_refresh_after = miss_refresh_after
        self.quick_every = quick_every
        self._source = source or (lambda: read_kernel_table(device))
        # IPv4 misses read the ARP table at once (a file read, no process): a device with a
        # new DHCP lease gets its MAC-based group from its first query.
        self._quick = quick_source if quick_source is not None else (
            None if source is not None else lambda: read_proc_arp(device))
        # -inf, not 0: monotonic time starts near 0 at boot, and a gateway that has just
        # booted must not rate-limit its first reads.
        self._quick_at = float("-inf")
        self._table: Mapping[str, str] = {}
        self._refreshed_at = float("-inf")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        try:
            table = dict(self._source())
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            log.warning("neighbour table not refreshed, keeping the last one: %s", exc)
            return
        self._table = table  # one reference swap: readers never see a half-built table
        self._refreshed_at = time.monotonic()

    def mac_for(self, ip: str) -> str | None:
        key = _canonical_ip(ip)
        if not key:
            return None
        mac = self._table.get(key)
        if mac is not None:
            return mac
        now = time.monotonic()
        if self._quick is not None and ":" not in key and now - self._quick_at > self.quick_every:
            self._quick_at = now
            try:
                fresh = self._quick()
            except (OSError, ValueError):
                fresh = {}
            mac = fresh.get(key)
            if mac is not None:
                self._table = {**self._table, key: mac}
                return mac
        if now - self._refreshed_at > self.miss_refresh_after:
            self._wake.set()  # a new device or a new lease: re-read soon, not on this path
        return None

    def __len__(self) -> int:
        return len(self._table)

    def start(self) -> KernelNeighbours:
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="neighbours", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.refresh()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(5)
