"""The school CA: created on first run, private key 0600, public parts served at /ca.

Stored in mitmproxy's own file layout (`mitmproxy-ca.pem` = key + certificate) in
filterd's CA directory, so the embedded mitmproxy (confdir = that directory) signs
with it and never creates one under ~/.mitmproxy.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from filterd.errors import ConfigError
from filterd.state.atomic import atomic_write

MITM_CA = "mitmproxy-ca.pem"  # what mitmproxy loads from its confdir
MITM_CA_CERT = "mitmproxy-ca-cert.pem"
PUBLIC_PEM = "filterd-ca.pem"
PUBLIC_DER = "filterd-ca.crt"  # DER: Android and Windows install this by tapping it


@dataclass(frozen=True, slots=True)
class SchoolCA:
    directory: Path

    @property
    def pem_path(self) -> Path:
        return self.directory / PUBLIC_PEM

    @property
    def der_path(self) -> Path:
        return self.directory / PUBLIC_DER

    def pem(self) -> bytes:
        return self.pem_path.read_bytes()

    def der(self) -> bytes:
        return self.der_path.read_bytes()

    def fingerprint(self) -> str:
        return hashlib.sha256(self.der()).digest().hex(":").upper()


def ensure_ca(directory: str | Path, school_name: str = "") -> SchoolCA:
    """Create the CA once; later calls reuse it (and re-export its public files if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    key_file = directory / MITM_CA
    if not key_file.exists():
        _create_in_child(key_file, school_name)
    os.chmod(key_file, 0o600)
    # The certificate is read as PEM text, not parsed: `cryptography` (10 MB in every
    # daemon process) is only imported to create a CA, once.
    found = _CERT_PEM.search(key_file.read_text(errors="replace"))
    try:
        der = ssl.PEM_cert_to_DER_cert(found.group(0)) if found else b""
    except ValueError:
        der = b""
    if not der:
        raise ConfigError(f"{key_file}: no certificate in the school CA file")
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    for name, data in (
        (MITM_CA_CERT, pem),
        (PUBLIC_PEM, pem),
        (PUBLIC_DER, der),
    ):
        path = directory / name
        if not path.exists() or path.read_bytes() != data:
            atomic_write(path, data, mode=0o644)
    return SchoolCA(directory)


def _create_in_child(key_file: Path, school_name: str) -> None:
    """Create the CA in a short-lived process, so the daemon never loads `cryptography`."""
    code = ("import sys; from pathlib import Path; from filterd.http.ca import _create; "
            "_create(Path(sys.argv[1]), sys.argv[2])")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(key_file), school_name],
                              capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"{key_file}: the school CA could not be created: {exc}") from None
    if proc.returncode != 0 or not key_file.exists():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{key_file}: the school CA could not be created: {last}")


_CERT_PEM = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


def _create(key_file: Path, school_name: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cn = f"filterd {school_name}".strip()[:50] + " school CA"
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, (school_name or "filterd")[:64]),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)
    atomic_write(key_file, data, mode=0o600)
