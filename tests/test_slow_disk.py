"""A slow SD card under the running daemon: every write and sync of the event log delayed.

The daemon runs under strace's fault injection (`-e inject=pwrite64:delay_enter=...`,
the same for fdatasync/fsync): each write SQLite makes takes 20 ms, each sync 200 ms,
as on a worn SD card. DNS must not wait on it (every query of a steady load answered,
none later than the client's timeout), and events must be batched: hundreds of them
stored in a few transactions, none dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "dns"))
from dnshelpers import Unbound, wait_dns

from tests.faults import TRACEBACK, flood
from tests.test_daemon import Daemon

pytestmark = pytest.mark.integration

NXDOMAIN = 3
WRITE_DELAY_US, SYNC_DELAY_US = 20_000, 200_000


class SlowDiskDaemon(Daemon):
    def start(self):
        self.log = open(self.tmp / "daemon.log", "wb")  # noqa: SIM115
        self.trace = self.tmp / "strace.log"
        cmd = ["strace", "-f", "-qq", "--seccomp-bpf", "-o", str(self.trace),
               "-e", "trace=pwrite64,fdatasync,fsync",
               "-e", f"inject=pwrite64:delay_enter={WRITE_DELAY_US}",
               "-e", f"inject=fdatasync:delay_enter={SYNC_DELAY_US}",
               "-e", f"inject=fsync:delay_enter={SYNC_DELAY_US}",
               sys.executable, "-m", "filterd", "run", "--config", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env(),
                                     cwd=self.tmp)
        wait_dns(self.address, "allowed.test", timeout=90, proc=self.proc)
        return self

    def stop(self):
        # SIGTERM to strace would only detach it: stop the daemon under it, then strace ends.
        if self.proc and self.proc.poll() is None:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            for pid in children.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def test_slow_sd_card_dns_does_not_wait_and_events_are_batched(tmp_path):
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/apt-packages.txt has it)")
    unbound = Unbound(tmp_path / "unbound").start()
    (tmp_path / "filterd").mkdir()
    d = SlowDiskDaemon(tmp_path / "filterd", unbound.address, flush_interval=0.5)
    try:
        d.start()
        db = d.tmp / "var" / "filterd.db"
        load = flood(d.address, 3.0, 200, "blocked.test", grace=2.0)
        assert load.unanswered == 0 and load.rcodes == {NXDOMAIN: load.sent}, load
        # No answer waited on the disk: all within a DNS client's first timeout.
        assert max(load.latencies) < 1.0, max(load.latencies)

        def stored() -> int:
            with sqlite3.connect(db, timeout=10) as c:
                return c.execute("SELECT COUNT(*) FROM events WHERE name LIKE "
                                 "'n%.blocked.test'").fetchone()[0]
        deadline = time.monotonic() + 60
        while stored() < load.sent and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stored() == load.sent, (stored(), load.sent)
        trace = d.trace.read_text()
        writes = trace.count("pwrite64(")
        # Batched: far fewer writes than events (one per row would be 800+ at 20 ms each).
        assert 0 < writes < load.sent // 2, (writes, load.sent)
        assert "DELAYED" in trace   # the injection did happen
        assert TRACEBACK not in d.logtext()
    finally:
        try:
            d.stop()
        finally:
            unbound.stop()
