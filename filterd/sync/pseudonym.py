"""Daily device pseudonyms: HMAC with a key that changes every day.

The secret lives only in `<data_dir>/sync/secret` (0600) and never leaves the
appliance. Each day's key is HMAC(secret, day), so the same device gets an
unrelated pseudonym tomorrow and nobody (not even the office) can follow a
device across days. Pseudonyms are only used inside the appliance to count
distinct devices; the report carries counts, never the pseudonyms themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date
from pathlib import Path

from filterd.errors import FilterdError
from filterd.state.atomic import create_exclusive

SECRET_BYTES = 32


class SecretError(FilterdError):
    """The appliance's pseudonym secret is unreadable or malformed."""


def load_or_create_secret(path: Path) -> bytes:
    """Read the appliance secret, creating it (0600, atomically) on first use."""
    path = Path(path)
    if path.exists():
        data = path.read_bytes()
        if len(data) != SECRET_BYTES:
            raise SecretError(f"{path}: expected {SECRET_BYTES} bytes, found {len(data)}")
        return data
    create_exclusive(path, secrets.token_bytes(SECRET_BYTES), mode=0o600)
    return path.read_bytes()   # ours, or the one a concurrent first run made


class DailyPseudonyms:
    """Pseudonyms for one day: `of(device)` is stable within the day, unrelated across days."""

    def __init__(self, secret: bytes, day: date) -> None:
        if len(secret) < 16:
            raise SecretError("pseudonym secret too short")
        self.day = day
        self._key = hmac.new(secret, b"filterd-day-key:" + day.isoformat().encode(),
                             hashlib.sha256).digest()

    def of(self, device: str) -> str:
        return hmac.new(self._key, device.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]


def device_identity(client_ip: str | None, client_mac: str | None) -> str | None:
    """What identifies a device within a day: its MAC when known, else its address."""
    if client_mac:
        return "mac:" + client_mac.strip().lower()
    if client_ip:
        return "ip:" + client_ip.strip().lower()
    return None
