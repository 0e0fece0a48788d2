"""Soak: hours of a school's DNS compressed into a bounded run, with an outage and a reload.

The running daemon (DNS, its HTTP block page and proxy in the same process) and the
admin page (its own process, waitress) are started as a school runs them; a real
unbound on loopback is the upstream. The load is a Zipf mix from 40 client addresses:
30 % blocked names (a compiled list of --blocked names), 60 % allowed names (a Zipf
over --allowed names: mostly cache hits), 10 % names never asked before (cache misses).
At 40 % of the run the upstream is stopped for --outage seconds and started again;
at 60 % the daemon is reloaded (SIGHUP). The admin dashboard is fetched (signed in)
every 5 s all along. As root, the bypass monitor (`filterd gateway monitor --lan lo`, its
own process) watches the same loopback while the 40 devices try other resolvers now and
then (plain DNS to 127.0.0.53–.62 port 53, a TCP SYN to port 853): two tries a second.

Sampled every --every seconds: RSS of every service (daemon, admin page, bypass
monitor, upstream); at the end, how long each service takes to stop after SIGTERM.
Reported: the RSS slope of each service over the run after warm-up and over its last
half (MB/hour, least squares; the upstream restarts at the outage), queries answered
and lost (no answer within 2 s) before, during and after the outage, the daemon's log
lines (and tracebacks), and the rate. JSON to --out.

Usage (bounded; under the shared lock):
    flock /work/bench.lock .venv/bin/python bench/soak/run.py --minutes 12 --qps 500
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import math
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench" / "dns"))

import run as dnsbench  # noqa: E402  (bench/dns/run.py: free ports, the upstream, waiting)

TRACEBACK = "Traceback (most recent call last)"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", re.M)
CLIENTS = 40
LOST_AFTER = 2.0


def qbytes(qid: int, name: str) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"


class Zipf:
    """Ranks 0..n-1 with P(k) ~ 1/(k+1)^s, drawn by bisection over the cumulative weights."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        acc, self.cum = 0.0, []
        for k in range(n):
            acc += 1.0 / (k + 1) ** s
            self.cum.append(acc)
        self.rng = rng

    def draw(self) -> int:
        import bisect

        return bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1])


def rss_kb(pid: int) -> int:
    """RSS of a process and its children (a service is all of its processes)."""
    total = 0
    for p in dnsbench.pids_of(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def slope_mb_per_hour(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, kB) in MB per hour."""
    if len(points) < 3:
        return float("nan")
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    num = sum((t - mx) * (v - my) for t, v in points)
    den = sum((t - mx) ** 2 for t, _ in points)
    return num / den * 3600 / 1024 if den else float("nan")


class Admin:
    """The admin page as a signed-in viewer would use it."""

    def __init__(self, base: str, name: str, password: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(base + "/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        data = urllib.parse.urlencode({"name": name, "password": password,
                                       "csrf_token": token.group(1) if token else ""})
        self.opener.open(base + "/login", data.encode(), timeout=10).read()

    def dashboard(self) -> str:
        return self.opener.open(self.base + "/", timeout=10).read().decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--qps", type=int, default=500)
    ap.add_argument("--blocked", type=int, default=100_000)
    ap.add_argument("--allowed", type=int, default=20_000)
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the upstream is down")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--cache-size", type=int, default=20_000,
                    help="dns.cache_size: small enough that the misses fill it within the "
                         "run, so the run sees memory at its bound (the default 100,000 "
                         "takes a school's day to fill)")
    ap.add_argument("--no-monitor", action="store_true",
                    help="leave the bypass monitor out (it needs root to capture on lo)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rng = random.Random(12)
    work = Path(tempfile.mkdtemp(prefix="filterd-soak-"))
    up_proc, up_port = dnsbench.upstream_unbound(work, 0)
    blocked = [f"b{i}.blocked-soak.test" for i in range(args.blocked)]
    server = dnsbench.Filterd(work, up_port, blocked, 0)
    server.prepare()
    mport, aport = dnsbench.free_port(), dnsbench.free_port()
    cfg = server.config
    cfg.write_text(cfg.read_text().replace("  block_ttl: 10\n", f"  block_ttl: 10\n  cache_size: "
                                           f"{args.cache_size}\n")
                   + f"metrics:\n  listen: '127.0.0.1:{mport}'\n")
    env = server.env()
    log_path = work / "daemon.log"
    daemon = subprocess.Popen(server.command(), stdout=open(log_path, "wb"),  # noqa: SIM115
                              stderr=subprocess.STDOUT, env=env)
    dnsbench.wait_up(daemon, server.port, "w1.allowed.bench")
    password = "soak-password-0123456789"
    subprocess.run([sys.executable, "-m", "filterd", "admin", "create-user", "soak", "--role",
                    "viewer", "--config", str(cfg), "--password-stdin"], input=password + "\n",
                   text=True, env=env, check=True, capture_output=True)
    admin = subprocess.Popen([sys.executable, "-m", "filterd", "admin", "serve", "--config",
                              str(cfg), "--listen", f"127.0.0.1:{aport}", "--insecure-cookies"],
                             stdout=open(work / "admin.log", "wb"),  # noqa: SIM115
                             stderr=subprocess.STDOUT, env=env)
    for _ in range(100):
        try:
            ui = Admin(f"http://127.0.0.1:{aport}", "soak", password)
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit("admin page did not start")

    monitor = None
    if not args.no_monitor and os.geteuid() == 0:
        monitor = subprocess.Popen([sys.executable, "-m", "filterd", "gateway", "monitor",
                                    "--lan", "lo", "--config", str(cfg)],
                                   stdout=subprocess.DEVNULL,
                                   stderr=open(work / "monitor.log", "wb"),  # noqa: SIM115
                                   env=env)
        for _ in range(300):
            if b"monitoring lo" in (work / "monitor.log").read_bytes():
                break
            if monitor.poll() is not None:
                raise SystemExit("bypass monitor exited: "
                                 + (work / "monitor.log").read_text(errors="replace"))
            time.sleep(0.1)
        else:
            raise SystemExit("bypass monitor did not start")
    bypass_socks = []
    for i in range(CLIENTS if monitor else 0):
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b.bind((f"127.0.0.{10 + i}", 0))
        b.setblocking(False)
        bypass_socks.append(b)
    bypass_tries = 0
    next_bypass = 0.0
    socks = []
    for i in range(CLIENTS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{10 + i}", 0))
        s.connect(("127.0.0.1", server.port))
        s.setblocking(False)
        socks.append(s)
    zb, za = Zipf(args.blocked, 1.0, rng), Zipf(args.allowed, 1.0, rng)
    seconds = args.minutes * 60
    outage_at, reload_at = 0.4 * seconds, 0.6 * seconds
    phases = {p: {"sent": 0, "answered": 0, "lost": 0, "servfail": 0}
              for p in ("before", "outage", "after")}
    pending: dict[tuple[int, int], tuple[float, str, str]] = {}
    # Every query declared lost, with what it was and when: a dropped query and a slow
    # one look alike at 2 s, so an answer that still comes later is recorded as late.
    lost_log: list[dict] = []
    declared_lost: dict[tuple[int, int], dict] = {}
    reload_t = outage_t = outage_back_t = None
    samples: dict[str, list[tuple[float, int]]] = {"daemon": [], "admin": [], "upstream": []}
    if monitor:
        samples["monitor"] = []
    dashboard_fetches = dashboard_errors = 0
    start = time.monotonic()
    next_sample = next_ui = 0.0
    sent = 0
    state = "before"
    outage_end = None
    reloaded = False
    qid = 0
    while True:
        now = time.monotonic() - start
        if now >= seconds:
            break
        if state == "before" and now >= outage_at:
            up_proc.terminate()
            up_proc.wait(10)
            state, outage_end, outage_t = "outage", now + args.outage, now
        elif state == "outage" and now >= outage_end:
            up_proc, _ = restart_upstream(work, up_port)
            state, outage_back_t = "after", time.monotonic() - start
        if not reloaded and now >= reload_at:
            daemon.send_signal(signal.SIGHUP)
            reloaded, reload_t = True, now
        due = int(now * args.qps)
        while sent < due:
            r = rng.random()
            if r < 0.3:
                name, kind = blocked[zb.draw()], "blocked"
            elif r < 0.9:
                name, kind = f"w{za.draw()}.allowed.bench", "allowed"
            else:
                name, kind = f"m{sent}.miss.bench", "miss"
            c = sent % CLIENTS
            qid = (qid + 1) & 0xFFFF
            with contextlib.suppress(OSError):
                socks[c].send(qbytes(qid, name))
            pending[(c, qid)] = (time.monotonic(), state, kind)
            phases[state]["sent"] += 1
            sent += 1
        ready, _, _ = select.select(socks, [], [], 0.002)
        for s in ready:
            c = socks.index(s)
            while True:
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                key = (c, struct.unpack_from("!H", data)[0])
                got = pending.pop(key, None)
                late = declared_lost.pop(key, None)
                if late is not None:
                    late["late_answer_s"] = round(time.monotonic() - start - late["t"], 3)
                if got is not None:
                    phases[got[1]]["answered"] += 1
                    if data[3] & 0x0F == 2:
                        phases[got[1]]["servfail"] += 1
        if bypass_socks and now >= next_bypass:
            next_bypass = now + 0.5
            c = bypass_tries % CLIENTS
            resolver = f"127.0.0.{53 + bypass_tries % 10}"
            if bypass_tries % 4 == 3:   # DoT: the SYN is what the monitor sees
                t = socket.socket()
                t.setblocking(False)
                t.bind((f"127.0.0.{10 + c}", 0))
                with contextlib.suppress(OSError):
                    t.connect((resolver, 853))
                t.close()
            else:
                with contextlib.suppress(OSError):
                    bypass_socks[c].sendto(qbytes(bypass_tries & 0xFFFF, "bypass.example"),
                                           (resolver, 53))
            bypass_tries += 1
        if now >= next_sample:
            next_sample = now + args.every
            services = [("daemon", daemon.pid), ("admin", admin.pid), ("upstream", up_proc.pid)]
            if monitor:
                services.append(("monitor", monitor.pid))
            for svc, pid in services:
                samples[svc].append((now, rss_kb(pid)))
            cutoff = time.monotonic() - LOST_AFTER
            for key in [k for k, (t, _, _) in pending.items() if t < cutoff]:
                t, phase, kind = pending.pop(key)
                phases[phase]["lost"] += 1
                if len(lost_log) < 200:
                    entry = {"t": round(t - start, 3), "phase": phase, "kind": kind,
                             "client": key[0], "id": key[1]}
                    lost_log.append(entry)
                    declared_lost[key] = entry
            print(f"{now:6.0f}s {state:7s} sent {sent:8d} daemon {samples['daemon'][-1][1]//1024}"
                  f" MB admin {samples['admin'][-1][1]//1024} MB", flush=True)
        if now >= next_ui:
            next_ui = now + 5
            try:
                ui.dashboard()
                dashboard_fetches += 1
            except OSError:
                dashboard_errors += 1
    time.sleep(LOST_AFTER)
    for s in socks + bypass_socks:
        s.close()
    for key, (t, phase, kind) in pending.items():
        phases[phase]["lost"] += 1
        if len(lost_log) < 200:
            lost_log.append({"t": round(t - start, 3), "phase": phase, "kind": kind,
                             "client": key[0], "id": key[1]})
    stop_s = {}
    for svc, proc in (("monitor", monitor), ("daemon", daemon), ("admin", admin),
                      ("upstream", up_proc)):
        if proc is None:
            continue
        t0 = time.monotonic()
        proc.terminate()
        try:
            proc.wait(60)
            stop_s[svc] = round(time.monotonic() - t0, 2)
        except subprocess.TimeoutExpired:   # a service systemd would have to SIGKILL
            proc.kill()
            proc.wait(10)
            stop_s[svc] = "killed after 60 s"
    log = log_path.read_text(errors="replace")
    mlog = (work / "monitor.log").read_text(errors="replace") if monitor else ""
    bypass_events = 0
    if monitor:
        import sqlite3
        with contextlib.closing(sqlite3.connect(server.work / "var" / "filterd.db")) as db, \
                contextlib.suppress(sqlite3.Error):
            bypass_events = db.execute(
                "SELECT count(*) FROM events WHERE path = 'bypass'").fetchone()[0]
    warm = 0.1 * seconds
    result = {
        "minutes": args.minutes, "qps": args.qps, "queries": sent,
        "load_average": os.getloadavg(),
        "phases": phases,
        "rss_mb_first_last": {k: [round(v[0][1] / 1024, 1), round(v[-1][1] / 1024, 1)]
                              for k, v in samples.items() if v},
        "rss_slope_mb_per_hour": {k: round(slope_mb_per_hour([p for p in v if p[0] >= warm]), 2)
                                  for k, v in samples.items()},
        # The last half: after the outage and the reload, caches at their bounds.
        "rss_slope_mb_per_hour_last_half": {
            k: round(slope_mb_per_hour([p for p in v if p[0] >= seconds / 2]), 2)
            for k, v in samples.items()},
        "log_lines": len(LOG_LINE.findall(log)), "tracebacks": log.count(TRACEBACK),
        "log_tail": log.splitlines()[-12:],
        "dashboard_fetches": dashboard_fetches, "dashboard_errors": dashboard_errors,
        "outage_s": [outage_t, outage_back_t], "reload_s": reload_t,
        "stop_seconds": stop_s,
        "bypass": {"tries": bypass_tries, "events": bypass_events,
                   "monitor_log_lines": len(mlog.splitlines()),
                   "monitor_tracebacks": mlog.count(TRACEBACK)} if monitor else None,
        "lost_queries": lost_log,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    lost = sum(p["lost"] for p in phases.values())
    return 0 if lost == 0 and result["tracebacks"] == 0 and not math.isnan(
        result["rss_slope_mb_per_hour"]["daemon"]) else 1


def restart_upstream(work: Path, port: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(["unbound", "-d", "-c", str(work / "upstream" / "unbound.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dnsbench.wait_up(proc, port, "w1.allowed.bench")
    return proc, port


if __name__ == "__main__":
    sys.exit(main())
