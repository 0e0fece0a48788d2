"""Ingest one day's uploads from N schools (default 5,000) into the office database.

Every upload takes the office's full path (`filterd.sync.office.ingest.receive`):
signature check, bounded gunzip, JSON Schema validation, one transaction storing
the report and its rows. Reports are generated (seeded) to the size of a busy
school's day; building them is the appliances' work and is not timed. The same
uploads go into SQLite, then into a PostgreSQL server the script starts itself
(durable settings: fsync on), one after the other, so the ratios compare like with like.

    flock /work/bench.lock python bench/office/bench_ingest.py --schools 5000
    python bench/office/bench_ingest.py --backend sqlite --schools 500
    python bench/office/bench_ingest.py --backend postgres --postgres-url postgresql://u@h/db

Prints JSON lines: preparation, one per backend, then PostgreSQL/SQLite ratios.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from filterd.sync import schema
from filterd.sync.office.enrol import complete_enrolment, issue_code
from filterd.sync.office.ingest import receive
from filterd.sync.office.storage import School, Storage
from filterd.sync.signing import Credential, sign

GROUPS = ("mam_non", "tieu_hoc", "thcs", "thpt", "staff", "guest")
CATEGORIES = ("adult", "gambling", "games", "social_networks", "short_video", "violence",
              "dating", "vpn", "drugs", "none")
DAY = "2026-11-24"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    return max(found, key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0,
               default=None)


def make_report(school_id: str, rnd: random.Random, rows: int) -> dict:
    counts = {}
    while len(counts) < rows:
        key = (rnd.choice(GROUPS), rnd.choice(CATEGORIES), rnd.choice(("allow", "block")),
               rnd.randrange(6, 22))
        counts[key] = rnd.randrange(1, 5000)
    top = {c: [{"name": f"site{i}.{c}.example", "devices": rnd.randrange(5, 60),
                "hits": rnd.randrange(5, 900)} for i in range(10)] for c in CATEGORIES[:6]}
    return {
        "$schema": "https://filterd.example/schema/daily-report/2", "schema_version": 2,
        "school_id": school_id, "day": DAY, "timezone": "Asia/Ho_Chi_Minh",
        "generated_at": "2026-11-25T02:00:00Z", "k_anonymity": 5,
        "counts": [{"group": g, "category": c, "action": a, "hour": h, "n": n}
                   for (g, c, a, h), n in counts.items()],
        "top_blocked": top,
        "devices": {g: rnd.randrange(10, 400) for g in GROUPS},
        "bypass": {g: {"attempts": rnd.randrange(0, 30), "devices": rnd.randrange(5, 40)}
                   for g in GROUPS[:4]},
        "lists": {"current_version": "a1b2c3d4e5f6", "updated_at": "2026-11-24T01:00:00Z",
                  "versions_seen": ["a1b2c3d4e5f6"]},
        "health": {"version": "0.1.0", "uptime_s": 86400, "events_dropped": 0,
                   "upstream_failures": rnd.randrange(0, 3)},
    }


@contextmanager
def throwaway_postgres():
    bindir = pg_bin()
    if bindir is None:
        sys.exit("PostgreSQL not installed: apt-get install postgresql (or pass --postgres-url)")
    base = Path(tempfile.mkdtemp(prefix="filterd-bench-pg-"))
    run_as = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres", "-E", "UTF8"], check=True, capture_output=True)
    # durable settings (fsync on): the numbers are what a real office server would see
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(base / "log"), "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def db_size(st: Storage) -> int:
    if st.backend == "sqlite":
        st.query("PRAGMA wal_checkpoint(TRUNCATE)")
        return st.path.stat().st_size
    return int(st.query("SELECT pg_database_size(current_database())")[0][0])


def prepare(schools: int, rows: int, seed: int) -> list[tuple[Credential, bytes]]:
    """The schools' uploads (the appliances' work, not timed): seeded, gzip, as sent."""
    rnd = random.Random(seed)
    uploads = []
    for i in range(schools):
        sid = f"school-{i:05d}"
        report = make_report(sid, rnd, rows)
        schema.validate(report)
        uploads.append((Credential.generate(sid), gzip.compress(schema.dumps(report), mtime=0)))
    return uploads


def run(url: str, uploads: list[tuple[Credential, bytes]], rows: int) -> dict:
    st = Storage(url)
    st.migrate()
    schools = len(uploads)
    for i, (cred, _) in enumerate(uploads):
        st.add_school(School(cred.school_id, f"Trường {i}", f"Quận {i % 30}", f"Tỉnh {i % 3}",
                             "", "2026-09-01T00:00:00Z"))
        code = issue_code(st, cred.school_id)
        complete_enrolment(st, cred.school_id, code.code, cred.public)
    size_before = db_size(st)
    gz_bytes = sum(len(b) for _, b in uploads)
    now = datetime.now(UTC)
    t1, c1 = time.perf_counter(), time.process_time()
    for cred, body in uploads:
        ack = receive(st, sign(cred, body, now.timestamp()), body, now=now)
        assert ack["status"] == "stored", ack
    ingest, ingest_cpu = time.perf_counter() - t1, time.process_time() - c1
    stored = st.query("SELECT COUNT(*), SUM(n) FROM report_counts")[0]
    reports = st.query("SELECT COUNT(*) FROM reports")[0][0]
    assert reports == schools
    size_after = db_size(st)
    st.close()
    return {"backend": st.backend, "loadavg_1m_at_end": round(os.getloadavg()[0], 1),
            "schools": schools, "count_rows_per_report": rows,
            "upload_gzip_bytes_total": gz_bytes, "upload_gzip_bytes_mean": gz_bytes // schools,
            "ingest_s": round(ingest, 1), "ingest_cpu_s_receiver": round(ingest_cpu, 1),
            "uploads_per_s": round(schools / ingest, 1),
            "ms_per_upload": round(1000 * ingest / schools, 2),
            "report_count_rows": int(stored[0]), "db_bytes_before": size_before,
            "db_bytes_after": size_after, "db_bytes_per_school_day":
                (size_after - size_before) // schools}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schools", type=int, default=5000)
    ap.add_argument("--rows", type=int, default=400, help="count rows per report")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--postgres-url", default=None, help="use this server instead of starting one")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    uploads = prepare(args.schools, args.rows, args.seed)
    print(json.dumps({"prepare_s": round(time.perf_counter() - t0, 1),
                      "loadavg_1m": round(os.getloadavg()[0], 1)}), flush=True)
    results = {}
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"] = run(f"sqlite:///{tmp}/office.db", uploads, args.rows)
        print(json.dumps(results["sqlite"]), flush=True)
    if args.backend in ("postgres", "both"):
        if args.postgres_url:
            results["postgres"] = run(args.postgres_url, uploads, args.rows)
        else:
            with throwaway_postgres() as url:
                results["postgres"] = run(url, uploads, args.rows)
        print(json.dumps(results["postgres"]), flush=True)
    if len(results) == 2:
        s, p = results["sqlite"], results["postgres"]
        print(json.dumps({"postgres_over_sqlite": {
            "ingest_time": round(p["ingest_s"] / s["ingest_s"], 2),
            "db_bytes_per_school_day": round(p["db_bytes_per_school_day"]
                                             / s["db_bytes_per_school_day"], 2)}}))


if __name__ == "__main__":
    main()
