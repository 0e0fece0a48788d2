"""Ed25519 signatures between a school's appliance and the education office.

The school's private key is made on the appliance and never leaves it (the file
named by `sync.token_file`, mode 0600, one line `filterd-school-v2:<school_id>:<key>`);
the office keeps only public keys, learned at enrolment with a one-time code
(filterd/sync/office/enrol.py). Every upload carries:

    X-Filterd-School     the school id
    X-Filterd-Key        the key id: 16 hex chars of SHA-256 of the raw public key
    X-Filterd-Timestamp  unix seconds (the office refuses more than MAX_SKEW away)
    X-Filterd-Nonce      32 hex chars, never accepted twice
    X-Filterd-Signature  base64url Ed25519 signature of
                         "filterd-upload-v2\\n<school>\\n<ts>\\n<nonce>\\n<hex sha256(body)>"

so the office knows which school sent it, that the gzip body was not altered,
and that a captured request cannot be replayed, without holding anything that
could sign in the school's name.

The small functions at the bottom (`generate_private`, `sign_bytes`,
`verify_bytes`, `key_id`, `b64e`/`b64d`) are the project's one Ed25519 toolkit:
other signed documents (the office's feeds) use them too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from filterd.errors import FilterdError

PREFIX = "filterd-school-v2"
CONTEXT = "filterd-upload-v2"
MAX_SKEW = 300  # seconds; clocks on school gateways drift, NTP may be late after boot
SCHOOL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")

H_SCHOOL = "X-Filterd-School"
H_KEY = "X-Filterd-Key"
H_TIMESTAMP = "X-Filterd-Timestamp"
H_NONCE = "X-Filterd-Nonce"
H_SIGNATURE = "X-Filterd-Signature"


class CredentialError(FilterdError):
    """The school's key file is missing or malformed."""


# -- the Ed25519 toolkit -------------------------------------------------------------------

def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64d(text: str) -> bytes:
    """base64url without padding; ValueError on anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_private() -> bytes:
    """A new private key: its 32-byte seed."""
    return Ed25519PrivateKey.generate().private_bytes_raw()


def public_of(private: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def sign_bytes(private: bytes, data: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private).sign(data)


def verify_bytes(public: bytes, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def write_private_file(path: Path, text: str) -> None:
    """Write a secret atomically, readable by its owner only (0600 from the first byte)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- the school's credential ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Credential:
    """A school id and its private key (appliance side only)."""

    school_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not SCHOOL_RE.match(self.school_id):
            raise CredentialError(f"bad school id {self.school_id!r}")
        if len(self.key) != 32:
            raise CredentialError("school key must be a 32-byte Ed25519 private key")

    @classmethod
    def generate(cls, school_id: str) -> Credential:
        return cls(school_id, generate_private())

    issue = generate   # older name

    @property
    def public(self) -> bytes:
        return public_of(self.key)

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def line(self) -> str:
        return f"{PREFIX}:{self.school_id}:{b64e(self.key)}"

    @classmethod
    def parse(cls, text: str) -> Credential:
        parts = text.strip().split(":")
        if len(parts) == 3 and parts[0] == "filterd-school-v1":
            raise CredentialError("this is an old shared-key credential: enrol the appliance "
                                  "again with a one-time code from the office "
                                  "(filterd sync enrol --code ...)")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise CredentialError(f"not a filterd school key (expected '{PREFIX}:...')")
        try:
            key = b64d(parts[2])
        except ValueError as exc:
            raise CredentialError("school key is not base64url") from exc
        return cls(parts[1], key)

    @classmethod
    def read(cls, path: Path) -> Credential:
        path = Path(path)
        try:
            text = path.read_text()
            mode = path.stat().st_mode & 0o077
        except OSError as exc:
            raise CredentialError(f"{path}: cannot read the school key: {exc.strerror}") from exc
        if mode:
            raise CredentialError(f"{path}: the school key is readable by others "
                                  f"(mode {oct(path.stat().st_mode & 0o777)}); chmod 600 it")
        try:
            return cls.parse(text)
        except CredentialError as exc:
            raise CredentialError(f"{path}: {exc}") from exc

    def write(self, path: Path) -> None:
        write_private_file(path, self.line() + "\n")


# -- signed requests --------------------------------------------------------------------------

def message(school_id: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([CONTEXT, school_id, timestamp, nonce,
                      hashlib.sha256(body).hexdigest()]).encode()


def sign(cred: Credential, body: bytes, now: float) -> dict[str, str]:
    ts = str(int(now))
    nonce = secrets.token_hex(16)
    return {H_SCHOOL: cred.school_id, H_KEY: cred.key_id, H_TIMESTAMP: ts, H_NONCE: nonce,
            H_SIGNATURE: b64e(sign_bytes(cred.key, message(cred.school_id, ts, nonce, body)))}


def verify(public: bytes, school_id: str, timestamp: str, nonce: str, sig: str,
           body: bytes) -> bool:
    try:
        raw = b64d(sig)
    except ValueError:
        return False
    return verify_bytes(public, message(school_id, timestamp, nonce, body), raw)
