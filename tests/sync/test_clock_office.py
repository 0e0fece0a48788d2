"""A wrong clock on the appliance and the office: `filterd sync` under libfaketime against a
real office receiver served over HTTPS (werkzeug with a test certificate) on loopback.

- Days slow (no RTC, NTP not yet answered): TLS refuses the office's certificate as not
  yet valid; the sync says the clock is the likely cause, keeps the reports, exits 75.
- Two hours fast (a bad NTP answer): the office refuses the signature's timestamp; the
  report stays in the outbox, nothing is stored at the office.
- The clock right again: the next sync delivers every waiting day, each stored once:
  the school is never locked out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from filterd.sync.office.app import create_app
from filterd.sync.office.enrol import enrol_school
from filterd.sync.office.storage import Storage

from .conftest import TZ, free_port, generate_days, make_event_db

REPO = Path(__file__).resolve().parents[2]
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
pytestmark = pytest.mark.integration


def _certificate(tmp: Path) -> tuple[Path, Path]:
    """A CA and a server certificate for 127.0.0.1, valid from yesterday for 30 days."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test office CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / "server.pem").write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    (tmp / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp / "server.pem", tmp / "server.key"


@pytest.fixture
def tls_office(tmp_path):
    from werkzeug.serving import make_server

    cert, key = _certificate(tmp_path)
    storage = Storage(f"sqlite:///{tmp_path / 'office' / 'office.db'}")
    storage.migrate()
    app = create_app(storage, secret=b"k" * 32, timezone=TZ, data_dir=tmp_path / "office")
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True,
                         ssl_context=(str(cert), str(key)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"https://127.0.0.1:{port}", storage, tmp_path / "ca.pem"
    server.shutdown()
    storage.close()


def run(cfg: Path, ca: Path, args: list[str], offset: str | None) -> subprocess.CompletedProcess:
    """`filterd ARGS` with the wall clock moved by `offset` (libfaketime: "-2d", "+2h")."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SSL_CERT_FILE": str(ca), "TZ": "UTC"}
    if offset is not None:
        if not FAKETIME.exists():
            pytest.skip("libfaketime is not installed (scripts/apt-packages.txt has it)")
        # a relative offset, monotonic time moved with it: otherwise sleep() fails with
        # EINVAL under libfaketime 0.9.10
        env.update(LD_PRELOAD=str(FAKETIME), FAKETIME=offset)
    return subprocess.run([sys.executable, "-m", "filterd", *args, "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_wrong_clock_fails_clearly_then_every_day_is_delivered_once(tls_office, tmp_path):
    url, storage, ca = tls_office
    data = tmp_path / "var"
    data.mkdir()
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {data}\nschool_id: thcs-clock-02\ntimezone: Asia/Ho_Chi_Minh\n"
                   f"sync:\n  office_url: {url}\n")
    code = enrol_school(storage, "thcs-clock-02", "THCS Đồng Hồ", "Ba Đình", "Hà Nội").code
    out = run(cfg, ca, ["enrol", "--code", code], None)
    assert out.returncode == 0, out.stdout + out.stderr
    today = datetime.now(TZ).date()
    days = [today - timedelta(days=3), today - timedelta(days=2), today - timedelta(days=1)]
    conn = make_event_db(data / "filterd.db")
    generate_days(conn, days, per_day=40)
    conn.close()

    # Two days slow (before the office certificate's start): TLS refuses the certificate
    # as not yet valid; the sync says the clock is the likely cause and keeps the report.
    r = run(cfg, ca, ["sync", "--now"], "-2d")
    assert r.returncode == 75, r.stdout + r.stderr
    assert "certificate" in r.stderr and "clock reads" in r.stderr, r.stderr
    assert storage.query("SELECT COUNT(*) FROM reports")[0][0] == 0

    # Two hours fast: TLS is fine, the office refuses the timestamp; nothing stored.
    r = run(cfg, ca, ["sync", "--now"], "+2h")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "check the appliance's time" in r.stdout + r.stderr
    assert storage.query("SELECT COUNT(*) FROM reports")[0][0] == 0

    # The clock is right again: every waiting day arrives, once each.
    r = run(cfg, ca, ["sync", "--now"], None)
    assert r.returncode == 0, r.stdout + r.stderr
    stored = [d for (d,) in storage.query("SELECT day FROM reports ORDER BY day")]
    assert stored == [d.isoformat() for d in days], (stored, r.stdout)
    r = run(cfg, ca, ["sync", "--now"], None)
    assert r.returncode == 0
    assert storage.query("SELECT COUNT(*) FROM reports")[0][0] == len(days)
