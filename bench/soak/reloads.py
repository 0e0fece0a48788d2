"""Soak: does the daemon's memory grow with each reload? RSS after each of --reloads reloads.

The daemon as bench/dns/run.py sets it up (100,000 listed names, a real unbound on
loopback); before each reload (SIGHUP) one client asks --queries names (a third listed,
a third of 20,000 allowed names, a third never asked before); RSS is read 1.5 s after
the reload. A reload builds a new engine and drops the old one: growth that levels off
is the allocator keeping freed pages; growth by the same amount at every reload is a
leak. Prints "reload RSS-MB" lines and the summary.

Usage (bounded; under the shared lock):
    flock /work/bench.lock .venv/bin/python bench/soak/reloads.py --reloads 40
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The soak's own module (bench/soak/run.py, loaded by path: `run` on sys.path is
# bench/dns/run.py): its query builder, and the DNS bench's servers it imports.
_spec = importlib.util.spec_from_file_location("soak_run", Path(__file__).with_name("run.py"))
soak = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(soak)
dnsbench = soak.dnsbench


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reloads", type=int, default=40)
    ap.add_argument("--queries", type=int, default=2000, help="queries before each reload")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="filterd-reloads-"))
    up_proc, up_port = dnsbench.upstream_unbound(work, 0)
    blocked = [f"b{i}.blocked-soak.test" for i in range(100_000)]
    server = dnsbench.Filterd(work, up_port, blocked, 0)
    server.prepare()
    proc = subprocess.Popen(server.command(), stdout=open(work / "daemon.log", "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, env=server.env())
    dnsbench.wait_up(proc, server.port, "w1.allowed.bench")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(2)
    rng, n, points = random.Random(1), 0, []
    try:
        for r in range(args.reloads):
            for _ in range(args.queries):
                n += 1
                name = rng.choice((blocked[rng.randrange(len(blocked))],
                                   f"w{rng.randrange(20_000)}.allowed.bench", f"m{n}.miss.bench"))
                sock.send(soak.qbytes(n & 0xFFFF, name))
                with contextlib.suppress(OSError):   # a lost answer: the next query goes on
                    sock.recv(4096)
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            points.append(rss_mb(proc.pid))
            print(r + 1, round(points[-1], 1), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
        up_proc.terminate()
        up_proc.wait(10)
    half = len(points) // 2
    print(f"RSS after reload 1: {points[0]:.1f} MB, after {half}: {points[half - 1]:.1f} MB, "
          f"after {len(points)}: {points[-1]:.1f} MB; the last half grew "
          f"{points[-1] - points[half - 1]:+.1f} MB over {len(points) - half} reloads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
