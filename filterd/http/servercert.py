"""A server certificate signed by the school CA, for filterd's own TLS services.

DNS over TLS and DNS over HTTPS (filterd/dns/serve_tls.py, serve_https.py) need a
certificate for the appliance's addresses and names. Unless the school installs
its own (`dns.tls_cert_file` / `dns.tls_key_file`), the daemon asks this module for
one issued by the school CA (ca.py), which managed devices already trust. It is
made once in a child process (the daemon never loads `cryptography`, as for the
CA), kept in `<ca dir>/dns-server.pem` (key 0600), and made again when the names
change or it has less than 30 days left.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from pathlib import Path

from filterd.errors import ConfigError
from filterd.http.ca import MITM_CA, SchoolCA
from filterd.state.atomic import atomic_write

CERT_FILE = "dns-server.pem"       # certificate, then the school CA
KEY_FILE = "dns-server-key.pem"
META_FILE = "dns-server.json"      # the names and addresses it was made for, and until when
LIFETIME_DAYS = 397                # what browsers accept for a server certificate
RENEW_BEFORE = 30 * 86400


def ensure_server_cert(ca: SchoolCA, names: tuple[str, ...], addresses: tuple[str, ...]
                       ) -> tuple[Path, Path]:
    """(certificate chain, key) for `names` and `addresses`, made or renewed as needed."""
    cert, key, meta = (ca.directory / CERT_FILE, ca.directory / KEY_FILE,
                       ca.directory / META_FILE)
    want = {"names": sorted(set(names)), "addresses": sorted(set(addresses))}
    try:
        have = json.loads(meta.read_text())
        fresh = (cert.exists() and key.exists() and {k: have.get(k) for k in want} == want
                 and have.get("not_after", 0) - time.time() > RENEW_BEFORE)
    except (OSError, ValueError):
        fresh = False
    if not fresh:
        code = ("import sys, json; from pathlib import Path; "
                "from filterd.http.servercert import _issue; "
                "_issue(Path(sys.argv[1]), json.loads(sys.argv[2]))")
        try:
            proc = subprocess.run([sys.executable, "-c", code, str(ca.directory),
                                   json.dumps(want)], capture_output=True, text=True,
                                  timeout=120, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"{cert}: the DNS server certificate could not be made: {exc}"
                              ) from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(f"{cert}: the DNS server certificate could not be made: {last}")
    try:   # a broken pair fails here, at start, not at the first device's handshake
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{cert}: unusable DNS server certificate: {exc}") from None
    return cert, key


def _issue(directory: Path, want: dict) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pem = (directory / MITM_CA).read_bytes()
    ca_key = serialization.load_pem_private_key(pem, None)
    ca_cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE-----"):])
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in want["names"]]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in want["addresses"]]
    cn = (want["names"] or want["addresses"] or ["filterd"])[0]
    now = datetime.datetime.now(datetime.UTC)
    not_after = min(now + datetime.timedelta(days=LIFETIME_DAYS), ca_cert.not_valid_after_utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn[:64])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    enc = serialization.Encoding.PEM
    atomic_write(directory / KEY_FILE, key.private_bytes(
        enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
    atomic_write(directory / CERT_FILE, cert.public_bytes(enc) + ca_cert.public_bytes(enc),
                 mode=0o644)
    meta = {**want, "not_after": not_after.timestamp()}
    atomic_write(directory / META_FILE, json.dumps(meta).encode(), mode=0o644)
