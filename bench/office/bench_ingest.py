"""Ingest one day's uploads from N schools (default 5,000) into the office database.

Every upload takes the office's full path (`filterd.sync.office.ingest.receive`):
signature check, bounded gunzip, JSON Schema validation, one transaction storing
the report and its rows. Reports are generated (seeded) to the size of a busy
school's day; building and signing them is the appliances' work and is not timed.

    python bench/office/bench_ingest.py --schools 5000 --backend sqlite
    python bench/office/bench_ingest.py --schools 5000 --backend postgres   # starts its own server
    python bench/office/bench_ingest.py --backend postgres --postgres-url postgresql://u@h/db

Prints one JSON line with the timings and sizes.
"""

from __future__ import annotations

import argparse
import base64
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
from filterd.sync.office.ingest import receive
from filterd.sync.office.storage import School, Storage
from filterd.sync.signing import Credential, sign

GROUPS = ("mam_non", "tieu_hoc", "thcs", "thpt", "staff", "guest")
CATEGORIES = ("adult", "gambling", "games", "social_networks", "short_video", "violence",
              "dating", "vpn", "drugs", "none")
DAY = "2026-11-24"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def make_report(school_id: str, rnd: random.Random, rows: int) -> dict:
    counts = {}
    while len(counts) < rows:
        key = (rnd.choice(GROUPS), rnd.choice(CATEGORIES), rnd.choice(("allow", "block")),
               rnd.randrange(6, 22))
        counts[key] = rnd.randrange(1, 5000)
    top = {c: [{"name": f"site{i}.{c}.example", "devices": rnd.randrange(5, 60),
                "hits": rnd.randrange(5, 900)} for i in range(10)] for c in CATEGORIES[:6]}
    return {
        "$schema": "https://filterd.example/schema/daily-report/1", "schema_version": 1,
        "school_id": school_id, "day": DAY, "timezone": "Asia/Ho_Chi_Minh",
        "generated_at": "2026-11-25T02:00:00Z", "k_anonymity": 5,
        "counts": [{"group": g, "category": c, "action": a, "hour": h, "n": n}
                   for (g, c, a, h), n in counts.items()],
        "top_blocked": top,
        "devices": {g: rnd.randrange(10, 400) for g in GROUPS},
        "bypass": {g: {"attempts": rnd.randrange(0, 30), "devices": rnd.randrange(0, 5)}
                   for g in GROUPS[:4]},
        "lists": {"current_version": "a1b2c3d4e5f6", "updated_at": "2026-11-24T01:00:00Z",
                  "versions_seen": ["a1b2c3d4e5f6"]},
        "health": {"version": "0.1.0", "uptime_s": 86400, "events_dropped": 0,
                   "upstream_failures": rnd.randrange(0, 3)},
    }


@contextmanager
def throwaway_postgres():
    base = Path(tempfile.mkdtemp(prefix="filterd-bench-pg-"))
    run_as = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run([*run_as, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres", "-E", "UTF8"], check=True, capture_output=True)
    # durable settings (fsync on): the numbers are what a real office server would see
    subprocess.run([*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(base / "log"), "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def db_size(st: Storage) -> int:
    if st.backend == "sqlite":
        st.query("PRAGMA wal_checkpoint(TRUNCATE)")
        return st.path.stat().st_size
    return int(st.query("SELECT pg_database_size(current_database())")[0][0])


def run(url: str, schools: int, rows: int, seed: int) -> dict:
    st = Storage(url)
    st.migrate()
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    uploads = []
    now = datetime.now(UTC)
    for i in range(schools):
        sid = f"school-{i:05d}"
        cred = Credential.issue(sid)
        st.add_school(School(sid, f"Trường {i}", f"Quận {i % 30}", f"Tỉnh {i % 3}",
                             base64.urlsafe_b64encode(cred.key).decode().rstrip("="),
                             "2026-09-01T00:00:00Z"))
        body = schema.encode(make_report(sid, rnd, rows))
        uploads.append((cred, body))
    prepare = time.perf_counter() - t0
    size_before = db_size(st)
    gz_bytes = sum(len(b) for _, b in uploads)
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
    load = os.getloadavg()[0]
    return {"backend": st.backend, "loadavg_1m_at_end": round(load, 1), "schools": schools,
            "count_rows_per_report": rows,
            "upload_gzip_bytes_total": gz_bytes, "upload_gzip_bytes_mean": gz_bytes // schools,
            "prepare_s": round(prepare, 1), "ingest_s": round(ingest, 1),
            "ingest_cpu_s_receiver": round(ingest_cpu, 1),
            "uploads_per_s": round(schools / ingest, 1),
            "ms_per_upload": round(1000 * ingest / schools, 2),
            "report_count_rows": int(stored[0]), "db_bytes_before": size_before,
            "db_bytes_after": size_after, "db_bytes_per_school_day":
                (size_after - size_before) // schools}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schools", type=int, default=5000)
    ap.add_argument("--rows", type=int, default=400, help="count rows per report")
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--postgres-url", default=None, help="use this server instead of starting one")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            result = run(f"sqlite:///{tmp}/office.db", args.schools, args.rows, args.seed)
    elif args.postgres_url:
        result = run(args.postgres_url, args.schools, args.rows, args.seed)
    else:
        with throwaway_postgres() as url:
            result = run(url, args.schools, args.rows, args.seed)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
