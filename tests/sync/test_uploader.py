import pytest

from filterd.errors import ConfigError
from filterd.sync.signing import Credential
from filterd.sync.uploader import OfficeUnreachable, Uploader, UploadRejected, check_office_url

from .conftest import free_port


@pytest.mark.parametrize("url", ["http://office.example", "ftp://x", "office.example",
                                 "http://10.0.0.1:8090"])
def test_plain_http_only_on_loopback(url):
    with pytest.raises(ConfigError, match="office_url"):
        check_office_url(url)


@pytest.mark.parametrize("url", ["https://office.example/", "http://127.0.0.1:8090",
                                 "http://localhost:1", "http://[::1]:9"])
def test_https_or_loopback_accepted(url):
    assert check_office_url(url) == url.rstrip("/")


def test_unreachable_office_is_a_clear_message():
    port = free_port()
    up = Uploader(f"http://127.0.0.1:{port}", Credential.issue("s1"), timeout=5)
    with pytest.raises(OfficeUnreachable, match=f"office unreachable at http://127.0.0.1:{port}"):
        up.send(b"x")


def test_refusal_carries_the_office_message(office):
    up = Uploader(office.url, Credential.issue("ghost"), timeout=10)
    with pytest.raises(UploadRejected, match="unknown school 'ghost'") as err:
        up.send(b"\x1f\x8b")
    assert err.value.status == 401


def _pki(directory):
    """A test CA and a certificate for localhost/127.0.0.1 signed by it (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, ext):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=7)))
        return b.add_extension(*ext).sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "filterd test office CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key,
               (x509.BasicConstraints(ca=True, path_length=None), True))
    sans = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name,
                 key.public_key(), ca_key, (sans, False))
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "cert.pem").write_bytes(cert.public_bytes(pem))
    (directory / "key.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return directory / "ca.pem", directory / "cert.pem", directory / "key.pem"


@pytest.mark.integration
def test_upload_over_https_verifies_the_office_certificate(tmp_path, appliance, monkeypatch):
    """The office behind TLS (as behind its reverse proxy): an untrusted certificate is
    refused and the report kept; trusted, the report is delivered."""
    import ssl
    import threading
    from datetime import date, datetime, timedelta

    from werkzeug.serving import make_server

    from filterd.sync.office.app import create_app
    from filterd.sync.office.storage import Storage
    from filterd.sync.outbox import run_sync

    from .conftest import TZ, enrol_with_key, generate_days

    ca, cert, key = _pki(tmp_path)
    storage = Storage(f"sqlite:///{tmp_path / 'office.db'}")
    app = create_app(storage, secret=b"k" * 32, timezone=TZ)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ctx)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings, conn = appliance
        day = date(2026, 11, 20)
        generate_days(conn, [day], per_day=50)
        cred = enrol_with_key(storage, settings.school_id)
        up = Uploader(f"https://localhost:{server.server_port}", cred, timeout=10)
        now = datetime(2026, 11, 21, 2, tzinfo=TZ)

        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nothing-trusted.pem"))
        r = run_sync(settings, up, now=now, retries=(), sleep=lambda _: None)
        assert r.pending == ["2026-11-20"] and "certificate verify failed" in r.error.lower()
        assert storage.query("SELECT COUNT(*) FROM reports")[0][0] == 0

        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the office's CA, as a real one would be
        r = run_sync(settings, up, now=now + timedelta(days=1), retries=(),
                     respect_backoff=False, sleep=lambda _: None)
        assert r.delivered == ["2026-11-20", "2026-11-21"] and r.error is None
        assert storage.query("SELECT COUNT(*) FROM reports")[0][0] == 2
    finally:
        server.shutdown()
        thread.join(timeout=10)
        storage.close()
