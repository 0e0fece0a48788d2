"""The SD card full under data_dir, with the running daemon: a small tmpfs the test mounts.

DNS must keep answering, the events that do not fit are counted and shown, the
SQLite file stays sound, the log says it once (no traceback), and writing resumes
by itself when space is freed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound, free_port

from tests.faults import assert_quiet_log, flood, metric, scrape
from tests.test_daemon import Daemon

pytestmark = pytest.mark.integration

NXDOMAIN = 3
QUEUE = 400


@pytest.fixture()
def small_disk(tmp_path):
    """data_dir on an 8 MB tmpfs (skips where mounting is not allowed)."""
    var = tmp_path / "filterd" / "var"
    var.mkdir(parents=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(var)],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs for data_dir (needs root): {exc}")
    yield var
    subprocess.run(["umount", "-l", str(var)], check=False, capture_output=True, timeout=10)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()
        with contextlib.suppress(OSError):
            os.fsync(f.fileno())
    return filler


def stored(db: Path, like: str) -> int:
    with sqlite3.connect(db, timeout=5) as c:
        return c.execute("SELECT COUNT(*) FROM events WHERE name LIKE ?", [like]).fetchone()[0]


def test_disk_full_dns_answers_events_counted_and_writing_resumes(tmp_path, small_disk):
    mport = free_port()
    unbound = Unbound(tmp_path / "unbound").start()
    d = Daemon(tmp_path / "filterd", unbound.address, flush_interval=0.2,
               events_extra=f"  queue_max: {QUEUE}\n",
               extra=f"metrics:\n  listen: '127.0.0.1:{mport}'\n")
    d.start()
    db = small_disk / "filterd.db"
    try:
        assert d.ask("n0.blocked.test").rcode() == NXDOMAIN   # a subdomain of a denied name
        d.wait_for(lambda: stored(db, "n0.blocked.test") == 1, "baseline event not stored")
        log_start = len(d.logtext())

        filler = fill(small_disk)
        load = flood(d.address, 3.0, 300, "blocked.test")
        assert load.unanswered == 0 and load.rcodes == {NXDOMAIN: load.sent}, load
        d.wait_for(lambda: metric(scrape(mport), "filterd_event_log_writable") == 0,
                   "disk full not shown in the metrics")
        # More than the queue holds: the rest are lost, and counted.
        text = scrape(mport)
        dropped = metric(text, "filterd_events_dropped_total")
        assert dropped >= load.sent - QUEUE - 50, (dropped, load.sent)
        shown = dashboard(d)   # a moment later: the count may only have grown
        assert shown["writable"] is False and shown["dropped"] >= dropped

        filler.unlink()   # the school's IT frees space
        d.wait_for(lambda: metric(scrape(mport), "filterd_event_log_writable") == 1,
                   "writing did not resume when space was freed")
        d.wait_for(lambda: stored(db, "n%.blocked.test") >= QUEUE // 2,
                   "the events kept in memory were not written after the disk had room")
        assert d.ask("n999999.blocked.test").rcode() == NXDOMAIN
        d.wait_for(lambda: stored(db, "n999999.blocked.test") == 1, "new events not written")
        with sqlite3.connect(db) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        fault_log = d.logtext()[log_start:]
        assert_quiet_log(fault_log, max_lines=6, what="disk full")
        assert "disk full" in fault_log and "written again" in fault_log, fault_log
    finally:
        d.stop()
        unbound.stop()


def dashboard(daemon: Daemon) -> dict:
    from admin_ui.backend import Backend
    from filterd.config import load_config

    return Backend(load_config(daemon.config)).event_log_health()


def test_describe_write_error():
    from filterd.state.events import describe_write_error

    assert describe_write_error(sqlite3.OperationalError("database or disk is full")) \
        == "disk full"
    assert describe_write_error(OSError(28, "No space left on device")) == "disk full"
    assert describe_write_error(sqlite3.OperationalError("attempt to write a readonly "
                                                         "database")) == "read-only file system"
    assert describe_write_error(sqlite3.OperationalError("database is locked")) \
        == "database locked by another process"
    time.sleep(0)
