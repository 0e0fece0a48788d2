"""Real servers on loopback for the alert tests: an SMTP server (aiosmtpd), a webhook
receiver, and `filterd run` with a policy whose students alert.

Clients are told apart by source address: 127.0.0.2 and 127.0.0.5-9 are THPT students,
127.0.0.4 a THCS student, 127.0.0.3 staff (Linux routes all of 127/8 to lo).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dns"))
from dnshelpers import free_port, wait_dns

REPO = Path(__file__).resolve().parents[2]

POLICY = """\
version: 1
default_group: chua_xac_dinh
protected:
  files: [protected.txt]
groups:
  hoc_sinh:
    abstract: true
    label_vi: Học sinh
    label_en: Students
    block:
      always: [adult]
  chua_xac_dinh:
    extends: hoc_sinh
    label_vi: Chưa xác định
    label_en: Unidentified
  thpt:
    extends: hoc_sinh
    label_vi: THPT (15–17 tuổi)
    label_en: Upper secondary
    clients: [127.0.0.2, 127.0.0.5-127.0.0.9]
    deny: [plain-deny.test]
  thcs:
    extends: hoc_sinh
    label_vi: THCS (11–14 tuổi)
    label_en: Lower secondary
    clients: [127.0.0.4]
  giao_vien:
    label_vi: Giáo viên
    label_en: Staff
    clients: [127.0.0.3]
"""

ALERTS = """\
alerts:
  devices:
    127.0.0.2: Máy tính bảng 10A-01
  rules:
    bao_ve:
      label_vi: Truy cập trang trong danh sách bảo vệ
      label_en: Protected-list site
      when: protected
      groups: [hoc_sinh]
      to: [principal, counsellor, class_teacher]
"""


class SmtpSink:
    """aiosmtpd on loopback; `messages` are the parsed mails it accepted."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait(self, n: int = 1, timeout: float = 10.0) -> float:
        """Seconds until `n` messages are in; fails after `timeout`."""
        start = time.monotonic()
        while len(self.messages) < n:
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{len(self.messages)} mails after {timeout}s, wanted {n}")
            time.sleep(0.05)
        return time.monotonic() - start


class WebhookSink:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                sink.bodies.append(json.loads(self.rfile.read(n)))
                sink.headers.append(dict(self.headers))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, n: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n:
            assert time.monotonic() < deadline, f"{len(self.bodies)} webhook calls, wanted {n}"
            time.sleep(0.05)


class AlertDaemon:
    """`python -m filterd run` with alerts going to `smtp_port` (plain SMTP on loopback)."""

    def __init__(self, tmp: Path, upstream: tuple[str, int], smtp_port: int, *,
                 hold: float = 2.0, alerts: str = ALERTS, workers: int = 1) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.policy_dir = tmp / "policies"
        self.policy_dir.mkdir(exist_ok=True)
        (self.policy_dir / "protected.txt").write_text("protected.test\nforbidden.test\n")
        (self.policy_dir / "policy.yaml").write_text(POLICY)
        (self.policy_dir / "alerts.yaml").write_text(alerts)
        self.data_dir = tmp / "var"
        self.config = tmp / "filterd.yaml"
        self.config.write_text(
            f"data_dir: {self.data_dir}\npolicy_dir: {self.policy_dir}\n"
            "school_name: Trường THPT Thử Nghiệm\nappliance_ipv4: 10.0.0.1\n"
            f"dns:\n  listen: ['127.0.0.1:{self.port}']\n"
            f"  upstreams: ['{upstream[0]}:{upstream[1]}']\n  upstream_timeout: 0.5\n"
            f"  workers: {workers}\n"
            "events:\n  flush_interval: 0.5\n"
            "http:\n  block_page_listen: '127.0.0.1:0'\n  proxy_listen: '127.0.0.1:0'\n"
            f"alerts:\n  smtp_host: 127.0.0.1\n  smtp_port: {smtp_port}\n"
            "  smtp_security: none\n  mail_from: canhbao@truong.test\n"
            "  admin_url: https://quantri.truong.test\n"
            f"  hold_seconds: {hold}\n  retry_initial: 0.5\n  retry_max: 1.0\n")
        self.proc: subprocess.Popen | None = None

    @property
    def db(self) -> Path:
        return self.data_dir / "filterd.db"

    def add_recipient(self, name: str, role: str, *, email: str = "", webhook: str = "",
                      groups: str = "", quiet: str = "") -> int:
        from filterd.alerts.recipients import Recipient
        from filterd.state import alerts as store

        r = Recipient(name=name, role=role, email=email, webhook=webhook,
                      groups=tuple(g for g in groups.split(",") if g), quiet=quiet)
        db = store.open_alerts_db(self.data_dir)
        try:
            return store.save_recipient(db, r.to_values())
        finally:
            db.conn.close()

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def start(self) -> AlertDaemon:
        self.log = open(self.tmp / "daemon.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "filterd", "run", "--config", str(self.config)],
            stdout=self.log, stderr=self.log, env=self.env(), cwd=self.tmp)
        wait_dns(("127.0.0.1", self.port), "allowed.test", timeout=60, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None
        self.log.close()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None
        self.log.close()

    def logtext(self) -> str:
        return (self.tmp / "daemon.log").read_text(errors="replace")

    def dig(self, name: str, source: str) -> str:
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.port), "-b", source, name,
                              "A", "+short", "+tries=1", "+time=3"],
                             capture_output=True, text=True, timeout=15)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def query(self, sql: str, args=()) -> list[tuple]:
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def wait_for(self, sql: str, args=(), timeout: float = 15.0) -> list[tuple]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                rows = self.query(sql, args)
            except sqlite3.OperationalError:
                rows = []
            if rows:
                return rows
            time.sleep(0.1)
        raise AssertionError(f"nothing for {sql!r} within {timeout}s\n{self.logtext()[-3000:]}")
