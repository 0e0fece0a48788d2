"""Where the CPU goes: each server's cost per query on each path of run.py's mix.

run.py reports one CPU figure for the whole mix (30 % blocked, 60 % cached allowed,
10 % cache misses). This benchmark sends each part alone, at the same fixed rate, to
the same servers set up the same way (same lists, same upstream, same cores), and
reports server CPU µs per answered query and p99 latency per path, side by side,
with ratios to unbound. It answers "which path makes filterd cost what it costs",
and what a path-weighted sum predicts for the mix against what the mix measures.

Paths (each a query file of its own, replayed by dnsperf at --rate for --seconds):
- hot: the 1,000 hot allowed names, warmed into every cache first (cache hits; in
  filterd mostly answer-memo hits, since each name comes back several times a second)
- blocked: names drawn at random from the whole blocked list (each a new decision)
- miss: names never asked before (each forwarded to the upstream)
- mix: run.py's mix

Usage: python bench/dns/paths.py [--names 1000000] [--seconds 8] [--out paths.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # the sibling benchmark's helpers

PATHS = ("hot", "blocked", "miss", "mix")
WEIGHTS = {"hot": 0.6, "blocked": 0.3, "miss": 0.1}   # run.py's mix


def path_file(path: Path, kind: str, blocked: list[str], lines: int, tag: str,
              seed: int) -> None:
    rnd = random.Random(seed)
    if kind == "hot":
        out = [f"w{rnd.randrange(run.HOT_ALLOWED)}.allowed.bench A" for _ in range(lines)]
    elif kind == "blocked":
        out = [f"{rnd.choice(blocked)} A" for _ in range(lines)]
    elif kind == "miss":
        out = [f"{tag}{i}.miss.bench A" for i in range(lines)]
    else:
        run.query_file(path, blocked, lines, tag, seed)
        return
    path.write_text("\n".join(out) + "\n")


PROFILE: Path | None = None   # --profile: py-spy stacks of each filterd path go here


def spy(server: run.Server, kind: str, seconds: float) -> subprocess.Popen | None:
    """py-spy (the filterd process, native frames included) during one path, if asked.

    --native pauses the process for each sample: the CPU figures of a profiled run
    include that, so take them from a run without --profile.
    """
    if PROFILE is None or not isinstance(server, run.Filterd):
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    PROFILE.mkdir(parents=True, exist_ok=True)
    out = PROFILE / f"{server.name}-{kind}.txt"
    return subprocess.Popen([exe, "record", "--native", "-r", "200",
                             "-d", str(max(1, int(seconds) - 1)), "-f", "raw", "-o", str(out),
                             "-p", str(server.proc.pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main_thread_ticks(pid: int) -> int:
    """CPU ticks of the process's main thread (filterd: the event loop, the query path);
    the rest of the process is its other threads (the event writer, alerts, metrics)."""
    try:
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def measure(server: run.Server, qdir: Path, seconds: float, rate: int,
            client_cpu: int, paths: tuple[str, ...] = PATHS) -> dict:
    res: dict = {}
    server.prepare()
    server.start()
    try:
        warm = qdir / "warm.txt"
        warm.write_text("".join(f"w{i}.allowed.bench A\n" for i in range(run.HOT_ALLOWED)))
        run.dnsperf(server.port, warm, 2, client_cpu, qps=2000)
        for kind in paths:
            profiler = spy(server, kind, seconds)
            before = run.cpu_ticks(server.proc.pid)
            main_before = main_thread_ticks(server.proc.pid)
            fixed = run.dnsperf(server.port, qdir / f"{server.name}-{kind}.txt", seconds,
                                client_cpu, qps=rate, verbose=True)
            used = run.cpu_ticks(server.proc.pid) - before
            main_used = main_thread_ticks(server.proc.pid) - main_before
            if profiler is not None:
                profiler.wait(30)
            res[kind] = {"cpu_us_per_query": round(used / run.TICK * 1e6
                                                   / max(1, fixed["completed"]), 1),
                         "p99_ms": fixed.get("p99_ms"), "qps": round(fixed["qps"]),
                         "lost": fixed["lost"]}
            if isinstance(server, run.Filterd):   # how much of it the query path's thread
                res[kind]["main_thread_us_per_query"] = round(
                    main_used / run.TICK * 1e6 / max(1, fixed["completed"]), 1)
        if all(k in res for k in WEIGHTS):
            res["weighted"] = {"cpu_us_per_query": round(sum(
                res[k]["cpu_us_per_query"] * w for k, w in WEIGHTS.items()), 1)}
    finally:
        server.stop()
    return res


def table(results: dict, servers: list[str], paths: tuple[str, ...] = PATHS) -> str:
    head = "| path | " + " | ".join(f"{s} µs/query" for s in servers) + " | " + \
        " | ".join(f"{s}/unbound" for s in servers if s != "unbound") + \
        " | " + " | ".join(f"{s} p99 ms" for s in servers) + " |"
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for kind in (*paths, "weighted"):
        if kind not in results[servers[0]]:
            continue
        cpu = [results[s][kind]["cpu_us_per_query"] for s in servers]
        u = results.get("unbound", {}).get(kind, {}).get("cpu_us_per_query")
        ratios = [run.ratio(results[s][kind]["cpu_us_per_query"], u)
                  for s in servers if s != "unbound"]
        p99 = [results[s][kind].get("p99_ms", "") for s in servers]
        lines.append(f"| {kind} | " + " | ".join(map(str, cpu)) + " | " + " | ".join(ratios)
                     + " | " + " | ".join(str(p) if p is not None else "" for p in p99) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--servers", default="filterd,unbound,dnsmasq",
                    help="any of filterd, filterd-pure, filterd-w2, unbound, dnsmasq")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--paths", default=",".join(PATHS),
                    help="which paths to send (a subset of hot,blocked,miss,mix: quicker "
                    "repeated runs of one path)")
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout (say, the commit before a change, its extension "
                    "built in place): adds the servers filterd-before, filterd-pure-before, "
                    "filterd-w2-before, run from it, to compare in one run under one load")
    ap.add_argument("--profile", type=Path, default=None,
                    help="record py-spy stacks (collapsed, native frames too) of each "
                    "filterd path into this directory; the CPU figures then include "
                    "py-spy's sampling")
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    paths = tuple(p for p in PATHS if p in args.paths.split(","))
    os.sched_setaffinity(0, {args.client_cpu})   # as run.py: off the server's core

    work = Path(tempfile.mkdtemp(prefix="filterd-paths-"))
    blocked, real = run.blocked_names(args.names)
    print(f"{len(blocked)} blocked names ({real} real); work dir {work}", flush=True)
    qdir = work / "queries"
    qdir.mkdir()
    servers = args.servers.split(",")
    lines = int(args.seconds * args.rate * 1.2)
    for si, name in enumerate(servers):
        for pi, kind in enumerate(paths):
            # Miss names differ per server, so no server asks the upstream what it has cached.
            path_file(qdir / f"{name}-{kind}.txt", kind, blocked, lines, f"{name[0]}{si}{pi}",
                      seed=10 * si + pi)
    up, up_port = run.upstream_unbound(work, args.client_cpu)
    results: dict = {"names": len(blocked), "seconds": args.seconds, "rate": args.rate,
                     "load_average_at_start": os.getloadavg()}
    classes = {**run.FILTERD_VARIANTS, "unbound": run.Unbound, "dnsmasq": run.Dnsmasq}
    if args.before is not None:
        for name, cls in run.FILTERD_VARIANTS.items():
            classes[f"{name}-before"] = type(f"{cls.__name__}Before", (cls,), {
                "name": f"{name}-before", "repo": args.before.resolve()})
        results["before"] = str(args.before.resolve())
    try:
        for name in servers:
            print(f"== {name}", flush=True)
            server = classes[name](work, up_port, blocked, args.server_cpu)
            results[name] = measure(server, qdir, args.seconds, args.rate, args.client_cpu,
                                    paths)
            if isinstance(server, run.Filterd):
                results[name]["fastpath"] = server.fastpath()
            print(json.dumps(results[name]), flush=True)
    finally:
        up.terminate()
        up.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    results["command"] = " ".join(sys.argv)
    print(table(results, servers, paths))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
