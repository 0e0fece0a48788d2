"""Fixtures for the sync tests: an appliance event database, a running office receiver
(waitress on a free loopback port) on SQLite or on a real PostgreSQL started here."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from filterd.sync.office.app import create_app
from filterd.sync.office.enrol import complete_enrolment, enrol_school
from filterd.sync.office.storage import Storage
from filterd.sync.outbox import SyncSettings
from filterd.sync.signing import Credential

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    return max(found, key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0,
               default=None)

# The event tables exactly as docs/dev/CONTRACTS.md describes them (owner: dns).
EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, ts REAL, client_ip TEXT,"
    " client_mac TEXT, group_id TEXT, name TEXT, qtype TEXT, action TEXT, reason TEXT,"
    " category TEXT, rule TEXT, source TEXT, list_version TEXT, path TEXT, url TEXT,"
    " search_term TEXT)",
    "CREATE TABLE IF NOT EXISTS counts (hour TEXT, group_id TEXT, category TEXT, action TEXT,"
    " path TEXT, n INTEGER, PRIMARY KEY (hour, group_id, category, action, path))",
    "CREATE TABLE IF NOT EXISTS count_devices (hour TEXT, group_id TEXT, category TEXT,"
    " action TEXT, device TEXT, PRIMARY KEY (hour, group_id, category, action, device))",
)


def make_event_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for ddl in EVENTS_DDL:
        conn.execute(ddl)
    return conn


@dataclass
class Ev:
    at: datetime
    ip: str
    mac: str | None
    group: str
    name: str
    action: str
    category: str = ""
    reason: str = "category"
    path: str = "dns"
    url: str | None = None
    search_term: str | None = None
    list_version: str = "2026.11.20-1"


def write_events(conn: sqlite3.Connection, events: list[Ev], *, allowed_counts: int = 0) -> None:
    """Blocked/bypass events go to `events`; every query (plus `allowed_counts` allowed
    queries per event hour, by the same device) is aggregated into `counts`, and its device
    into `count_devices`, as the event log does."""
    agg: dict[tuple, int] = defaultdict(int)
    seen: set[tuple] = set()
    rows = []
    for e in events:
        hour = e.at.astimezone(UTC).strftime("%Y-%m-%dT%H")
        seen.add((hour, e.group, e.category, e.action, e.mac or e.ip))
        if allowed_counts:
            seen.add((hour, e.group, "", "allow", e.mac or e.ip))
        rows.append((e.at.timestamp(), e.ip, e.mac, e.group, e.name, "A", e.action, e.reason,
                     e.category, "rule", "list x", e.list_version, e.path, e.url, e.search_term))
        hour = e.at.astimezone(UTC).strftime("%Y-%m-%dT%H")
        agg[(hour, e.group, e.category, e.action, e.path)] += 1
        if allowed_counts:
            agg[(hour, e.group, "", "allow", "dns")] += allowed_counts
    conn.executemany("INSERT INTO events (ts, client_ip, client_mac, group_id, name, qtype,"
                     " action, reason, category, rule, source, list_version, path, url,"
                     " search_term) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO counts (hour, group_id, category, action, path, n)"
                     " VALUES (?,?,?,?,?,?) ON CONFLICT (hour, group_id, category, action, path)"
                     " DO UPDATE SET n = n + excluded.n",
                     [(*k, n) for k, n in agg.items()])
    conn.executemany("INSERT OR IGNORE INTO count_devices (hour, group_id, category, action,"
                     " device) VALUES (?,?,?,?,?)", sorted(seen))


GROUPS = ("mam_non", "tieu_hoc", "thcs", "thpt", "staff")
CATEGORIES = ("adult", "gambling", "games", "social_networks", "violence")


def generate_days(conn: sqlite3.Connection, days: list[date], *, seed: int = 7,
                  per_day: int = 300) -> None:
    rnd = random.Random(seed)
    devices = [(f"10.10.{i // 200}.{i % 200 + 10}", f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                GROUPS[i % len(GROUPS)]) for i in range(60)]
    events = []
    for d in days:
        start = datetime(d.year, d.month, d.day, tzinfo=TZ)
        for _ in range(per_day):
            ip, mac, group = rnd.choice(devices)
            at = start + timedelta(seconds=rnd.randrange(86400))
            cat = rnd.choice(CATEGORIES)
            if rnd.random() < 0.05:
                events.append(Ev(at, ip, mac, group, "dns.google", "block", "bypass",
                                 reason="bypass", path="bypass"))
            else:
                events.append(Ev(at, ip, mac, group, f"site{rnd.randrange(8)}.{cat}.example",
                                 "block", cat))
    write_events(conn, events, allowed_counts=3)


def appliance_total(conn: sqlite3.Connection, day: date) -> int:
    from filterd.sync.report import day_bounds

    s, e = day_bounds(day, TZ)
    return conn.execute("SELECT COALESCE(SUM(n), 0) FROM counts WHERE hour >= ? AND hour < ?",
                        [s.strftime("%Y-%m-%dT%H"), e.strftime("%Y-%m-%dT%H")]).fetchone()[0]


@pytest.fixture
def appliance(tmp_path):
    """(settings, sqlite connection) of an appliance whose data dir is tmp_path/appliance."""
    data = tmp_path / "appliance"
    data.mkdir()
    conn = make_event_db(data / "filterd.db")
    settings = SyncSettings(data_dir=data, school_id="thcs-ba-dinh-01", timezone=TZ, k=5)
    yield settings, conn
    conn.close()


# --- PostgreSQL -----------------------------------------------------------------------------

def post_report(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """POST a gzip report to the office at `url`: (status, JSON answer), errors included."""
    req = urllib.request.Request(url + "/api/v1/reports", data=body, method="POST",
                                 headers={"Content-Encoding": "gzip", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on a free loopback port, started by the tests themselves
    (Debian's `postgresql` package, scripts/apt-packages.txt); skips if it is not installed.
    PostgreSQL refuses to run as root, so as root (CI) it runs as the package's `postgres` user."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL not installed: no /usr/lib/postgresql/*/bin/initdb "
                    "(apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="filterd-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as non-root")
        shutil.chown(base, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    datadir, port = base / "data", free_port()
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(datadir), "-A", "trust",
                    "-U", "postgres", "--no-sync", "-E", "UTF8"], check=True,
                   capture_output=True, timeout=120)
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(datadir), "-w", "-t", "60",
                    "-l", str(base / "log"), "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
                    " -c synchronous_commit=off -c full_page_writes=off", "start"],
                   check=True, capture_output=True, timeout=90)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def new_pg_database(server_url: str) -> str:
    """A fresh, empty namespace: a new schema first on the search path (much cheaper than
    CREATE DATABASE on a busy machine)."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{server_url}/postgres?options=-csearch_path%3D{name}"


def cut_connections(storage: Storage) -> list[int]:
    """What a PostgreSQL restart or an administrator does to the office's open connections:
    terminate their server processes (returns their pids)."""
    import psycopg

    pids = [c.info.backend_pid for c in storage._all if not c.closed]
    with psycopg.connect(storage.url.split("?", 1)[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
    return pids


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request, tmp_path):
    """Office storage on SQLite and on a real PostgreSQL (each test runs on both)."""
    if request.param == "sqlite":
        st = Storage(f"sqlite:///{tmp_path / 'office' / 'office.db'}")
    else:
        st = Storage(new_pg_database(request.getfixturevalue("postgres_server")))
    st.migrate()
    yield st
    st.close()


def enrol_with_key(storage: Storage, school_id: str = "thcs-ba-dinh-01",
                   district: str = "Ba Đình", province: str = "Hà Nội") -> Credential:
    code = enrol_school(storage, school_id, f"THCS {school_id}", district, province)
    cred = Credential.generate(school_id)
    complete_enrolment(storage, school_id, code.code, cred.public)
    return cred


# --- a running office -------------------------------------------------------------------------

@dataclass
class Office:
    url: str
    storage: Storage
    app: object

    def enrol(self, school_id: str = "thcs-ba-dinh-01", district: str = "Ba Đình",
              province: str = "Hà Nội") -> Credential:
        """Enrol the school and its appliance's new key (what `filterd enrol` does)."""
        return enrol_with_key(self.storage, school_id, district, province)

    def total(self, school_id: str, day: date) -> int:
        return self.storage.query("SELECT COALESCE(SUM(n), 0) FROM report_counts"
                                  " WHERE school_id = ? AND day = ?",
                                  [school_id, day.isoformat()])[0][0]

    def count(self, table: str) -> int:
        return self.storage.query(f"SELECT COUNT(*) FROM {table}")[0][0]


@pytest.fixture
def office(storage, tmp_path):
    import waitress

    app = create_app(storage, secret=b"k" * 32, timezone=TZ)
    app.config["TESTING"] = True
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Office(f"http://127.0.0.1:{server.effective_port}", storage, app)
    stop_waitress(server, thread)


def stop_waitress(server, thread: threading.Thread) -> None:
    """Close every channel from inside the server's own loop, so its select never sees a
    closed descriptor; the loop ends when nothing is left to watch."""
    def close_all():
        for channel in list(server._map.values()):
            channel.close()
    server.trigger.pull_trigger(close_all)
    thread.join(timeout=10)
    server.task_dispatcher.shutdown()


def wait_until(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()
