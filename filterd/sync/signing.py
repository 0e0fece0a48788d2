"""Per-school upload authentication: HMAC-SHA256 over school, timestamp, nonce and body.

The office issues each school a random key at enrolment, as one credential line
(`filterd-school-v1:<school_id>:<key>`) that the IT person saves in the
appliance's `sync.token_file`. Every upload carries:

    X-Filterd-School     the school id
    X-Filterd-Timestamp  unix seconds (the office refuses more than MAX_SKEW away)
    X-Filterd-Nonce      32 hex chars, never accepted twice
    X-Filterd-Signature  hex HMAC-SHA256(key, "v1\\n<school>\\n<ts>\\n<nonce>\\n<sha256(body)>")

so the office knows which school sent it, that the gzip body was not altered,
and that a captured request cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from filterd.errors import FilterdError

PREFIX = "filterd-school-v1"
KEY_BYTES = 32
MAX_SKEW = 300  # seconds; clocks on school gateways drift, NTP may be late after boot
SCHOOL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")

H_SCHOOL = "X-Filterd-School"
H_TIMESTAMP = "X-Filterd-Timestamp"
H_NONCE = "X-Filterd-Nonce"
H_SIGNATURE = "X-Filterd-Signature"


class CredentialError(FilterdError):
    """The school's credential file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Credential:
    school_id: str
    key: bytes

    def __post_init__(self) -> None:
        if not SCHOOL_RE.match(self.school_id):
            raise CredentialError(f"bad school id {self.school_id!r}")
        if len(self.key) < 16:
            raise CredentialError("school key too short")

    @classmethod
    def issue(cls, school_id: str) -> Credential:
        return cls(school_id, secrets.token_bytes(KEY_BYTES))

    def line(self) -> str:
        key = base64.urlsafe_b64encode(self.key).decode().rstrip("=")
        return f"{PREFIX}:{self.school_id}:{key}"

    @classmethod
    def parse(cls, text: str) -> Credential:
        parts = text.strip().split(":")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise CredentialError(f"not a filterd school credential (expected '{PREFIX}:...')")
        try:
            key = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
        except ValueError as exc:
            raise CredentialError("credential key is not base64") from exc
        return cls(parts[1], key)

    @classmethod
    def read(cls, path: Path) -> Credential:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CredentialError(f"{path}: cannot read the school credential: "
                                  f"{exc.strerror}") from exc
        try:
            return cls.parse(text)
        except CredentialError as exc:
            raise CredentialError(f"{path}: {exc}") from exc


def signature(key: bytes, school_id: str, timestamp: str, nonce: str, body: bytes) -> str:
    msg = "\n".join(["v1", school_id, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def sign(cred: Credential, body: bytes, now: float) -> dict[str, str]:
    ts = str(int(now))
    nonce = secrets.token_hex(16)
    return {H_SCHOOL: cred.school_id, H_TIMESTAMP: ts, H_NONCE: nonce,
            H_SIGNATURE: signature(cred.key, cred.school_id, ts, nonce, body)}


def verify(key: bytes, school_id: str, timestamp: str, nonce: str, sig: str,
           body: bytes) -> bool:
    return hmac.compare_digest(signature(key, school_id, timestamp, nonce, body), sig.lower())
