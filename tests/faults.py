"""Helpers for the fault tests: a paced UDP load of DNS queries, RSS, metrics, log checks.

The load is what a school's devices do during an outage: new names at a steady rate,
each asked once, every answer matched to its query by ID.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TRACEBACK = "Traceback (most recent call last)"
# The daemon's log line prefix (filterd.daemon.configure_logging): one per record.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", re.M)


def query_bytes(qid: int, name: str, qtype: int = 1) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


@dataclass
class Load:
    sent: int = 0
    rcodes: dict[int, int] = field(default_factory=dict)
    late: list[float] = field(default_factory=list)   # seconds to answer, for the slow ones
    latencies: list[float] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(self.rcodes.values())

    @property
    def unanswered(self) -> int:
        return self.sent - self.answered

    def p(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")


def flood(address: tuple[str, int], seconds: float, qps: int, prefix: str,
          names: list[str] | None = None, grace: float = 3.0) -> Load:
    """Send `qps` queries a second for `seconds` (new names `<n>.<prefix>` unless `names`
    cycles a given list) and collect every answer until `grace` seconds after the last."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect(address)
    sock.setblocking(False)
    out = Load()
    sent_at: dict[int, float] = {}
    start = time.monotonic()
    total = int(seconds * qps)
    end = None

    def drain() -> None:
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                continue
            if len(data) < 12:
                continue
            qid = struct.unpack_from("!H", data)[0]
            t = sent_at.pop(qid, None)
            if t is None:
                continue
            rcode = data[3] & 0x0F
            out.rcodes[rcode] = out.rcodes.get(rcode, 0) + 1
            out.latencies.append(time.monotonic() - t)

    while True:
        now = time.monotonic()
        due = min(total, int((now - start) * qps) + 1)
        while out.sent < due:
            qid = out.sent & 0xFFFF
            name = names[out.sent % len(names)] if names else f"n{out.sent}.{prefix}"
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                sock.send(query_bytes(qid, name))
            sent_at[qid] = time.monotonic()
            out.sent += 1
        if out.sent >= total:
            if end is None:
                end = time.monotonic() + grace
            if not sent_at or time.monotonic() >= end:
                break
        select.select([sock], [], [], 0.005)
        drain()
    drain()
    sock.close()
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (labels must match exactly those given)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        if key == name and not want:
            return float(value)
        if key.startswith(name + "{") and ",".join(sorted(key[len(name) + 1:-1].split(","))) \
                == want:
            return float(value)
    return None


def log_lines(text: str) -> int:
    return len(LOG_LINE.findall(text))


def assert_quiet_log(text: str, *, max_lines: int, what: str) -> None:
    """No traceback, and at most `max_lines` log records for the scenario."""
    assert TRACEBACK not in text, f"{what}: a traceback in the log:\n{text[-3000:]}"
    n = log_lines(text)
    assert n <= max_lines, f"{what}: {n} log lines (at most {max_lines}):\n{text[-3000:]}"
