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
