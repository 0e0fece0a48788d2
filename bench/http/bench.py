"""filterd's SNI relay vs squid 5 peek-and-splice, side by side in one run.

Everything runs inside a fresh network namespace (as root): an upstream on
127.0.0.1:443/:80, `filterd proxy` (real policy engine, shipped seed lists) and
`squid -N` (ssl_bump peek at step 1, terminate on the same SNI blocklist, splice
the rest). One client drives both, one after the other, with the same workloads:

  newconn   new TLS connections through CONNECT (handshake + one small request each)
  bulk      large downloads through the TLS tunnel (passthrough MB/s)
  http      small plain-HTTP requests through the proxy (keep-alive)
  latency   one connection at a time, through the proxy and direct: p50/p99

The proxy's CPU is read from /proc/<pid>/task/*/schedstat (user+system of all its
threads, in ns) before and after each workload, so "per CPU-second" depends little
on how busy the rest of the machine is. Each workload runs on both proxies back to
back (alternating which goes first), for --rounds rounds; the ratios are the median
of the per-round filterd/squid ratios.

Usage (repository root, as root):
  flock /work/bench.lock /work/venv/bin/python bench/http/bench.py --duration 4 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TICK = os.sysconf("SC_CLK_TCK")
ALLOWED_SNI = "www.bench-allowed.test"


def cpu_seconds(pid: int) -> float:
    """CPU time of all threads of `pid`, in nanosecond resolution (schedstat).

    /proc/<pid>/stat counts in clock ticks (10 ms): too coarse for a workload that costs
    the proxy a fraction of a second. Falls back to it where schedstat is missing.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK


# -- certificates -------------------------------------------------------------------------

def make_certs(d: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("bench CA")).issuer_name(name("bench CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=10))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name(ALLOWED_SNI)).issuer_name(name("bench CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(ALLOWED_SNI)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (d / "leaf.key").write_bytes(pem_key(key))
    # squid insists on a certificate for an ssl-bump port even when it only peeks and splices
    (d / "squid-ca.pem").write_bytes(pem_key(ca_key) + ca.public_bytes(serialization.Encoding.PEM))


# -- the proxies --------------------------------------------------------------------------

def blocklist_names() -> list[str]:
    names = []
    for f in sorted((REPO / "blocklists" / "seed").glob("*.txt")):
        for line in f.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(line.split()[0])
    return names


def start_squid(d: Path, port: int, blocked: list[str]) -> subprocess.Popen:
    # squid's dstdomain-style list: ".a.com" matches a.com and its subdomains (as filterd does)
    uniq = set(blocked)
    # squid refuses a list holding both a.com and x.a.com (".a.com" covers both)
    def covered(n: str) -> bool:
        return any(".".join(n.split(".")[i:]) in uniq for i in range(1, n.count(".") + 1))
    kept = sorted(n for n in uniq if not covered(n))
    (d / "blocked.txt").write_text("".join(f".{n}\n" for n in kept))
    conf = d / "squid.conf"
    conf.write_text(f"""
http_port 127.0.0.1:{port} ssl-bump cert={d}/squid-ca.pem generate-host-certificates=off
acl step1 at_step SslBump1
acl blocked ssl::server_name "{d}/blocked.txt"
ssl_bump peek step1
ssl_bump terminate blocked
ssl_bump splice all
http_access allow all
cache deny all
access_log none
cache_store_log none
cache_log {d}/squid-cache.log
pid_filename {d}/squid.pid
coredump_dir {d}
cache_mem 8 MB
workers 1
shutdown_lifetime 0 seconds
max_filedescriptors 16384
""")
    os.chmod(d, 0o755)
    for f in d.iterdir():
        os.chmod(f, 0o644)
    proc = subprocess.Popen(["squid", "-N", "-f", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    return proc


def start_filterd(d: Path, port: int) -> subprocess.Popen:
    cfg = d / "filterd.yaml"
    cfg.write_text(f"data_dir: {d / 'var'}\n"
                   "http: {block_page_listen: '127.0.0.1:0',"
                   f" proxy_listen: '127.0.0.1:{port}'}}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "filterd", "proxy", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            cwd=d)
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("filterd proxy did not start: " + proc.stderr.read())
        if line.startswith("proxy:"):
            return proc


async def wait_port(port: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.1)


# -- the client ---------------------------------------------------------------------------

def client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def tunnel(proxy: int | None, sni: str, ctx: ssl.SSLContext):
    if proxy is None:
        r, w = await asyncio.open_connection("127.0.0.1", 443)
    else:
        r, w = await asyncio.open_connection("127.0.0.1", proxy)
        w.write(b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
            raise ConnectionError(head[:40])
    await w.start_tls(ctx, server_hostname=sni)
    return r, w


async def one_tls_request(proxy: int | None, ctx: ssl.SSLContext, sni: str = ALLOWED_SNI) -> None:
    r, w = await tunnel(proxy, sni, ctx)
    try:
        w.write(f"GET /small HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        data = await r.read()
        while chunk := await r.read():
            data += chunk
        if not data.endswith(b"x" * 100):
            raise ConnectionError("short response")
    finally:
        w.close()


async def run_for(duration: float, conc: int, job) -> tuple[int, int, list[float]]:
    done = errors = 0
    lat: list[float] = []
    end = time.monotonic() + duration

    async def loop() -> None:
        nonlocal done, errors
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                await job()
                done += 1
                lat.append(time.perf_counter() - t)
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError):
                errors += 1
    await asyncio.gather(*(loop() for _ in range(conc)))
    return done, errors, lat


async def http_keepalive(proxy: int, duration: float, conc: int) -> tuple[int, int]:
    done = errors = 0
    end = time.monotonic() + duration
    req = b"GET http://127.0.0.1/small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def loop() -> None:
        nonlocal done, errors
        r, w = await asyncio.open_connection("127.0.0.1", proxy)
        try:
            while time.monotonic() < end:
                w.write(req)
                head = await r.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await r.readexactly(length)
                done += 1
        except (OSError, asyncio.IncompleteReadError, ConnectionError, IndexError):
            errors += 1
        finally:
            w.close()
    await asyncio.gather(*(loop() for _ in range(conc)))
    return done, errors


async def bulk(proxy: int, mb: int, streams: int, ctx: ssl.SSLContext) -> tuple[int, float]:
    async def one() -> int:
        r, w = await tunnel(proxy, ALLOWED_SNI, ctx)
        w.write(f"GET /big?mb={mb} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        n = 0
        while chunk := await r.read(1 << 20):
            n += len(chunk)
        w.close()
        return n
    t = time.perf_counter()
    sizes = await asyncio.gather(*(one() for _ in range(streams)))
    return sum(sizes), time.perf_counter() - t


async def interleaved_latency(port: int, ctx: ssl.SSLContext,
                              duration: float) -> tuple[list[float], list[float]]:
    """One connection at a time, alternating proxy and direct, so both see the same noise."""
    via: list[float] = []
    direct: list[float] = []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        for proxy, out in ((port, via), (None, direct)):
            t = time.perf_counter()
            await one_tls_request(proxy, ctx)
            out.append(time.perf_counter() - t)
    return via, direct


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


async def sanity(port: int) -> bool:
    """A blocked SNI is refused and an allowed one works; True when the block held."""
    ctx = client_ctx()
    try:
        await one_tls_request(port, ctx, sni=blocklist_names()[0])
        refused = False
    except (OSError, ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        refused = True
    await one_tls_request(port, ctx)
    return refused


async def measure(workload: str, pid: int, port: int, args) -> dict:
    """One workload against one proxy; the proxy's CPU from /proc around it."""
    ctx = client_ctx()
    c0 = cpu_seconds(pid)
    if workload == "newconn":
        n, err, _ = await run_for(args.duration, args.concurrency,
                                  lambda: one_tls_request(port, ctx))
        cpu = cpu_seconds(pid) - c0
        return {"connections": n, "errors": err, "proxy_cpu_s": round(cpu, 3),
                "per_cpu_second": round(n / cpu, 1) if cpu else None,
                "per_second": round(n / args.duration, 1)}
    if workload == "bulk":
        async with asyncio.timeout(120):
            nbytes, secs = await bulk(port, args.bulk_mb, 2, ctx)
        cpu = cpu_seconds(pid) - c0
        return {"bytes": nbytes, "seconds": round(secs, 2),
                "MB_per_s": round(nbytes / secs / 1e6, 1), "proxy_cpu_s": round(cpu, 3),
                "MB_per_cpu_second": round(nbytes / 1e6 / cpu, 1) if cpu else None}
    if workload == "http":
        n, err = await http_keepalive(port, args.duration, args.concurrency)
        cpu = cpu_seconds(pid) - c0
        return {"requests": n, "errors": err, "proxy_cpu_s": round(cpu, 3),
                "per_cpu_second": round(n / cpu, 1) if cpu else None,
                "per_second": round(n / args.duration, 1)}
    via, direct = await interleaved_latency(port, ctx, args.duration)
    return {"p50_proxy": round(pct(via, .5) * 1e3, 2),
            "p99_proxy": round(pct(via, .99) * 1e3, 2),
            "p50_direct": round(pct(direct, .5) * 1e3, 2),
            "p99_direct": round(pct(direct, .99) * 1e3, 2),
            "p50_added": round((pct(via, .5) - pct(direct, .5)) * 1e3, 2),
            "p99_added": round((pct(via, .99) - pct(direct, .99)) * 1e3, 2),
            "samples": len(via)}


WORKLOADS = ("newconn", "bulk", "http", "latency")
RATIOS = {  # name -> (workload, figure)
    "newconn_per_cpu_second": ("newconn", "per_cpu_second"),
    "bulk_MB_per_cpu_second": ("bulk", "MB_per_cpu_second"),
    "bulk_MB_per_s": ("bulk", "MB_per_s"),
    "http_per_cpu_second": ("http", "per_cpu_second"),
    "http_per_second": ("http", "per_second"),
}


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def summarize(rounds: list[dict]) -> dict:
    """Medians over the rounds."""
    def med(workload: str, key: str) -> float:
        return round(median([r[workload][key] for r in rounds]), 2)
    return {
        "newconn_per_cpu_second": med("newconn", "per_cpu_second"),
        "newconn_per_second": med("newconn", "per_second"),
        "bulk_MB_per_s": med("bulk", "MB_per_s"),
        "bulk_MB_per_cpu_second": med("bulk", "MB_per_cpu_second"),
        "http_per_cpu_second": med("http", "per_cpu_second"),
        "http_per_second": med("http", "per_second"),
        "p99_added_ms": med("latency", "p99_added"),
        "p50_added_ms": med("latency", "p50_added"),
        "errors": sum(r["newconn"]["errors"] + r["http"]["errors"] for r in rounds),
    }


def paired_ratios(f_rounds: list[dict], s_rounds: list[dict]) -> dict:
    """filterd/squid per round (the two ran back to back), then the median over rounds:
    steadier than a ratio of medians when the machine's load drifts."""
    out = {}
    for name, (workload, key) in RATIOS.items():
        per_round = [f[workload][key] / s[workload][key]
                     for f, s in zip(f_rounds, s_rounds, strict=True) if s[workload][key]]
        out[name] = {"median": round(median(per_round), 2),
                     "min": round(min(per_round), 2), "max": round(max(per_round), 2)}
    return out


async def inside(args) -> None:
    d = Path(tempfile.mkdtemp(prefix="fdbench-"))
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        make_certs(d)
        up = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), str(d / "leaf.pem"),
                               str(d / "leaf.key"), "127.0.0.1"], stdout=subprocess.PIPE, text=True)
        procs.append(up)
        assert up.stdout.readline().strip() == "ready"
        filterd = start_filterd(d, 3128)
        procs.append(filterd)
        squid = start_squid(d, 3129, blocklist_names())
        procs.append(squid)
        await wait_port(3128)
        await wait_port(3129)
        proxies = (("filterd", filterd.pid, 3128), ("squid", squid.pid, 3129))
        refused = {name: await sanity(port) for name, _, port in proxies}
        rounds: dict[str, list[dict]] = {"filterd": [], "squid": []}
        # Each workload runs on both proxies back to back, in alternating order, so a
        # change of load elsewhere on the machine hits both alike.
        for i in range(args.rounds):
            results: dict[str, dict] = {"filterd": {}, "squid": {}}
            for j, workload in enumerate(WORKLOADS):
                order = proxies if (i + j) % 2 == 0 else proxies[::-1]
                for name, pid, port in order:
                    results[name][workload] = await measure(workload, pid, port, args)
            for name in rounds:
                rounds[name].append(results[name])
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        f, s = summarize(rounds["filterd"]), summarize(rounds["squid"])
        f["blocked_refused"], s["blocked_refused"] = refused["filterd"], refused["squid"]
        ratios = paired_ratios(rounds["filterd"], rounds["squid"])
        report = {"when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "cpus": os.cpu_count(), "args": vars(args),
                  "squid_version": squid_version(),
                  "median": {"filterd": f, "squid": s},
                  "ratios_filterd_over_squid": ratios, "rounds": rounds}
        print(json.dumps(report, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(d, ignore_errors=True)


def squid_version() -> str:
    out = subprocess.run(["squid", "-v"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "?"


load_before = os.getloadavg()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per workload")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--bulk-mb", type=int, default=200, help="MiB per bulk stream (2 streams)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians)")
    ap.add_argument("--json", help="write the report here too")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        import uvloop

        uvloop.run(inside(args))
        return
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark uses its own network namespace")
    ns = f"fdbench{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        cmd = ["ip", "netns", "exec", ns, sys.executable, __file__, "--inside",
               "--duration", str(args.duration), "--concurrency", str(args.concurrency),
               "--bulk-mb", str(args.bulk_mb), "--rounds", str(args.rounds)]
        if args.json:
            cmd += ["--json", str(Path(args.json).resolve())]
        raise SystemExit(subprocess.call(cmd))
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
