"""What a cache miss costs over DNS over TLS against plain DNS, filterd beside unbound.

Four forwarders, one after another, each pinned to --server-cpu, in front of the same
upstream (unbound on loopback serving the synthetic zone of run.py over plain DNS and
over DoT with a self-signed test certificate, pinned with the client to --client-cpu):

- filterd, upstream `127.0.0.1:PORT` (plain)
- filterd, upstream `tls://127.0.0.1:TLSPORT#dns.bench` (certificate verified)
- unbound, `forward-addr: 127.0.0.1@PORT`
- unbound, `forward-tls-upstream: yes`, `forward-addr: 127.0.0.1@TLSPORT#dns.bench`
- and filterd with `https://127.0.0.1:HTTPSPORT/dns-query#dns.bench` (DoH over HTTP/2;
  unbound cannot forward over DoH, so this column has no unbound twin)

Every query is a name never asked before (a cache miss, forwarded), replayed by
dnsperf at --rate for --seconds after a short warm-up (which opens the TLS
connection). Measured: forwarder CPU µs per query, p50/p99 latency, answered share;
printed as a table with DoT/plain ratios per server and filterd/unbound per transport.

Usage: python bench/dns/dot.py [--seconds 8] [--rate 1000] [--out dot.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # the sibling benchmark's helpers


def test_cert(work: Path) -> tuple[Path, Path]:
    """A self-signed certificate for dns.bench and 127.0.0.1 (the clients' only anchor)."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=dns.bench", "-addext",
                    "subjectAltName=DNS:dns.bench,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def upstream(work: Path, cpu: int, cert: Path, key: Path
             ) -> tuple[subprocess.Popen, int, int, int]:
    port, tls_port, https_port = run.free_port(), run.free_port(), run.free_port()
    d = work / "upstream"
    d.mkdir(parents=True, exist_ok=True)
    (d / "unbound.conf").write_text(f"""server:
  interface: 127.0.0.1@{port}
  interface: 127.0.0.1@{tls_port}
  interface: 127.0.0.1@{https_port}
  tls-port: {tls_port}
  https-port: {https_port}
  http-endpoint: "/dns-query"
  tls-service-key: "{key}"
  tls-service-pem: "{cert}"
  incoming-num-tcp: 100
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "." static
  local-zone: "miss.bench." redirect
  local-data: "miss.bench. 3600 IN A 192.0.2.2"
remote-control:
  control-enable: no
""")
    proc = subprocess.Popen(["taskset", "-c", str(cpu), "unbound", "-d", "-c",
                             str(d / "unbound.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    run.wait_up(proc, port, "w1.miss.bench")
    return proc, port, tls_port, https_port


class Filterd(run.Filterd):
    def __init__(self, work: Path, upstream_spec: str, ca: Path, cpu: int, name: str) -> None:
        self.name = name
        super().__init__(work, 1, ["blocked.bench"], cpu)   # port 1: replaced in prepare()
        self.spec, self.ca = upstream_spec, ca

    def prepare(self) -> None:
        super().prepare()
        text = self.config.read_text().replace(f"'127.0.0.1:{self.upstream}'", repr(self.spec))
        text = text.replace("  block_ttl: 10\n",
                            f"  block_ttl: 10\n  upstream_ca_file: {self.ca}\n")
        self.config.write_text(text)


class Unbound(run.Unbound):
    def __init__(self, work: Path, forward: str, tls: bool, ca: Path, cpu: int,
                 name: str) -> None:
        self.name = name
        super().__init__(work, 1, ["blocked.bench"], cpu)
        self.forward, self.tls, self.ca = forward, tls, ca

    def prepare(self) -> None:
        super().prepare()
        conf = self.work / "unbound.conf"
        text = conf.read_text().replace("  forward-addr: 127.0.0.1@1\n",
                                        f"  forward-addr: {self.forward}\n")
        if self.tls:
            text = text.replace("forward-zone:\n", "forward-zone:\n  forward-tls-upstream: yes\n")
            text = text.replace("  do-not-query-localhost: no\n",
                                f'  do-not-query-localhost: no\n  tls-cert-bundle: "{self.ca}"\n')
        conf.write_text(text)


def measure(server: run.Server, qdir: Path, seconds: float, rate: int, client_cpu: int,
            tag: str) -> dict:
    server.prepare()
    server.start()
    try:
        warm = qdir / f"warm-{tag}.txt"
        warm.write_text("".join(f"warm{tag}{i}.miss.bench A\n" for i in range(200)))
        run.dnsperf(server.port, warm, 1, client_cpu, qps=200)
        qfile = qdir / f"miss-{tag}.txt"
        qfile.write_text("".join(f"{tag}{i}.miss.bench A\n"
                                 for i in range(int(seconds * rate * 1.2) + 10)))
        before = run.cpu_ticks(server.proc.pid)
        res = run.dnsperf(server.port, qfile, seconds, client_cpu, qps=rate, verbose=True)
        used = run.cpu_ticks(server.proc.pid) - before
        return {"cpu_us_per_query": round(used / run.TICK * 1e6 / max(1, res["completed"]), 1),
                "p50_ms": res.get("p50_ms"), "p99_ms": res.get("p99_ms"),
                "qps": round(res["qps"]), "answered": round(res["completed"] / max(1, res["sent"]),
                                                            4)}
    finally:
        server.stop()


def table(r: dict) -> str:
    rows = [("CPU µs per miss", "cpu_us_per_query"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
            ("answered", "answered")]
    fp, ft, up, ut = r["filterd-plain"], r["filterd-dot"], r["unbound-plain"], r["unbound-dot"]
    fh = r["filterd-doh"]
    out = ["| per cache miss | filterd plain | filterd DoT | DoT/plain | unbound plain | "
           "unbound DoT | DoT/plain | filterd/unbound DoT | filterd DoH | DoH/plain |",
           "|---|" + "---:|" * 9]
    for label, k in rows:
        out.append(f"| {label} | {fp[k]} | {ft[k]} | {run.ratio(ft[k], fp[k])} | {up[k]} | "
                   f"{ut[k]} | {run.ratio(ut[k], up[k])} | {run.ratio(ft[k], ut[k])} | "
                   f"{fh[k]} | {run.ratio(fh[k], fp[k])} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.client_cpu})
    work = Path(tempfile.mkdtemp(prefix="filterd-bench-dot-"))
    qdir = work / "queries"
    qdir.mkdir()
    cert, key = test_cert(work)
    up, port, tls_port, https_port = upstream(work, args.client_cpu, cert, key)
    results: dict = {"seconds": args.seconds, "rate": args.rate,
                     "load_average_at_start": os.getloadavg()}
    servers = [
        Filterd(work, f"127.0.0.1:{port}", cert, args.server_cpu, "filterd-plain"),
        Filterd(work, f"tls://127.0.0.1:{tls_port}#dns.bench", cert, args.server_cpu,
                "filterd-dot"),
        Unbound(work, f"127.0.0.1@{port}", False, cert, args.server_cpu, "unbound-plain"),
        Unbound(work, f"127.0.0.1@{tls_port}#dns.bench", True, cert, args.server_cpu,
                "unbound-dot"),
        Filterd(work, f"https://127.0.0.1:{https_port}/dns-query#dns.bench", cert,
                args.server_cpu, "filterd-doh"),
    ]
    try:
        for i, server in enumerate(servers):
            print(f"== {server.name}", flush=True)
            results[server.name] = measure(server, qdir, args.seconds, args.rate,
                                           args.client_cpu, f"m{i}x")
            print(json.dumps(results[server.name]), flush=True)
            time.sleep(0.5)
    finally:
        up.terminate()
        up.wait(10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    results["command"] = " ".join(sys.argv)
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
