"""Test certificates (a CA and a server certificate signed by it) and unbound serving DoT/DoH."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnshelpers import Unbound, free_port


@dataclass
class Pki:
    ca: Path          # the CA certificate (PEM): what a client trusts
    cert: Path        # the server certificate chain (PEM)
    key: Path         # the server key (PEM)


def make_pki(directory: Path, names: tuple[str, ...] = ("dns.test",),
             ips: tuple[str, ...] = ("127.0.0.1",), label: str = "filterd test CA") -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                                for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    out = Pki(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    out.ca.write_bytes(ca.public_bytes(pem))
    out.cert.write_bytes(cert.public_bytes(pem))
    out.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return out


def encrypted_unbound(directory: Path, pki: Pki, extra: str = "") -> tuple[Unbound, int, int]:
    """unbound answering plain DNS, DoT (its `tls_port`) and DoH (`https_port`, /dns-query)."""
    tls_port, https_port = free_port(), free_port()
    lines = [
        f"  interface: 127.0.0.1@{tls_port}",
        f"  interface: 127.0.0.1@{https_port}",
        f"  tls-port: {tls_port}",
        f"  https-port: {https_port}",
        f'  tls-service-key: "{pki.key}"',
        f'  tls-service-pem: "{pki.cert}"',
        '  http-endpoint: "/dns-query"',
        "  http-notls-downstream: no",
        "  tcp-idle-timeout: 30000",
        "  incoming-num-tcp: 100",
    ]
    u = Unbound(directory, extra="\n".join(lines) + ("\n" + extra if extra else ""))
    return u.start(), tls_port, https_port
