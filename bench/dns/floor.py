"""The floor of a Python DNS server on this machine, beside unbound, in one run.

Two bare UDP servers answer every query from a dict keyed by the query's bytes
after the ID (asking the upstream once per distinct query): the least a Python
server can do per packet. No parsing, no policy, no cache ageing, no event log.
"event loop" is how filterd listens (uvloop: a reader callback draining the socket
until EAGAIN); "blocking" is a thread doing nothing but blocking recvfrom/sendto,
one system call per packet each way. unbound serves the same hot names from its
cache. All are pinned to --server-cpu, dnsperf and the upstream to --client-cpu,
as in run.py.

Measured: server CPU µs per query at a fixed rate (10,000 QPS) and saturation QPS,
on the 1,000 hot allowed names of run.py's mix (every query a cache hit).

Usage: python bench/dns/floor.py [--seconds 10] [--rate 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # the sibling benchmark's helpers

# Both servers: the listening socket on argv[1], the upstream on argv[2], the dict. The
# answering lines stay inline in each loop (a function call would be part of the floor).
COMMON = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
up.settimeout(2)
upstream = ("127.0.0.1", int(sys.argv[2]))
memo = {}
'''

FLOOR_SERVER = COMMON + r'''
import asyncio
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    loop = asyncio.new_event_loop()
s.setblocking(False)
def readable():
    for _ in range(64):
        try:
            data, addr = s.recvfrom(65535)
        except BlockingIOError:
            return
        key = (addr[0], data[2:])
        tail = memo.get(key)
        if tail is None:
            up.sendto(data, upstream)
            tail = memo[key] = up.recv(4096)[2:]
        s.sendto(data[:2] + tail, addr)
loop.add_reader(s.fileno(), readable)
loop.run_forever()
'''

BLOCKING_SERVER = COMMON + r'''
while True:
    data, addr = s.recvfrom(65535)
    key = (addr[0], data[2:])
    tail = memo.get(key)
    if tail is None:
        up.sendto(data, upstream)
        tail = memo[key] = up.recv(4096)[2:]
    s.sendto(data[:2] + tail, addr)
'''


def measure(cmd: list[str], port: int, qfile: Path, seconds: float, rate: int,
            client_cpu: int) -> dict:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run.wait_up(proc, port, "w1.allowed.bench", limit=30)
        run.dnsperf(port, qfile, 2, client_cpu, qps=2000)   # warm: every name answered once
        before = run.cpu_ticks(proc.pid)
        fixed = run.dnsperf(port, qfile, seconds, client_cpu, qps=rate)
        used = run.cpu_ticks(proc.pid) - before
        before = run.cpu_ticks(proc.pid)
        sat = run.dnsperf(port, qfile, seconds, client_cpu)
        sat_used = run.cpu_ticks(proc.pid) - before
        return {"cpu_us_per_query": round(used / run.TICK * 1e6 / max(1, fixed["completed"]), 1),
                "saturation_qps": round(sat["qps"]),
                "cpu_us_per_query_saturated": round(
                    sat_used / run.TICK * 1e6 / max(1, sat["completed"]), 1)}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="filterd-floor-"))
    qfile = work / "hot.txt"
    qfile.write_text("".join(f"w{i}.allowed.bench A\n" for i in range(run.HOT_ALLOWED)))
    upstream, up_port = run.upstream_unbound(work, args.client_cpu)
    results = {}
    try:
        for label, code in (("python, event loop", FLOOR_SERVER),
                            ("python, blocking", BLOCKING_SERVER)):
            port = run.free_port()
            cmd = ["taskset", "-c", str(args.server_cpu), sys.executable, "-c", code,
                   str(port), str(up_port)]
            results[label] = measure(cmd, port, qfile, args.seconds, args.rate,
                                     args.client_cpu)
        ub = run.Unbound(work, up_port, ["blocked.bench"], args.server_cpu)
        ub.prepare()
        pinned = ["taskset", "-c", str(args.server_cpu), *ub.command()]
        results["unbound"] = measure(pinned, ub.port, qfile, args.seconds, args.rate,
                                     args.client_cpu)
    finally:
        upstream.terminate()
        upstream.wait(10)
    results["time"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
