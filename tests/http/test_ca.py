from __future__ import annotations

from cryptography import x509

from filterd.http.ca import MITM_CA, ensure_ca


def test_created_once_private_key_0600(tmp_path):
    ca = ensure_ca(tmp_path / "ca", "THCS Nguyễn Du")
    key = tmp_path / "ca" / MITM_CA
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca").stat().st_mode & 0o777 == 0o700
    cert = x509.load_pem_x509_certificate(ca.pem())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "school CA" in cert.subject.rfc4514_string()
    first = key.read_bytes()
    again = ensure_ca(tmp_path / "ca", "other")
    assert key.read_bytes() == first and again.fingerprint() == ca.fingerprint()
    assert b"PRIVATE KEY" not in ca.pem() and ca.der()[:1] == b"\x30"


def test_public_files_and_fingerprint_agree_with_cryptography(tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization

    ca = ensure_ca(tmp_path / "ca")
    cert = x509.load_pem_x509_certificate((tmp_path / "ca" / MITM_CA).read_bytes())
    assert ca.pem() == cert.public_bytes(serialization.Encoding.PEM)
    assert ca.der() == cert.public_bytes(serialization.Encoding.DER)
    assert ca.fingerprint() == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    # A public file damaged on disk is written again from the key file.
    (tmp_path / "ca" / "filterd-ca.crt").write_bytes(b"junk")
    assert ensure_ca(tmp_path / "ca").der() == ca.der()


def test_the_daemon_process_never_loads_cryptography(tmp_path):
    import subprocess
    import sys

    # First start (the CA is created, in a child process) and every later one.
    code = ("import sys; from filterd.http.ca import ensure_ca; "
            f"ensure_ca({str(tmp_path / 'ca')!r}).fingerprint(); "
            "print(any(m.startswith('cryptography') for m in sys.modules))")
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        assert out.stdout.strip() == "False"   # 10 MB the daemon does not carry
    assert (tmp_path / "ca" / MITM_CA).stat().st_mode & 0o777 == 0o600


def test_ca_file_without_certificate_is_a_clear_error(tmp_path):
    import pytest

    from filterd.errors import ConfigError

    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / MITM_CA).write_text("-----BEGIN RSA PRIVATE KEY-----\nabc\n")
    with pytest.raises(ConfigError, match=MITM_CA):
        ensure_ca(tmp_path / "ca")
