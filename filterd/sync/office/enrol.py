"""Enrol a school: record it and issue a one-time enrolment code; the appliance then sends
its public key with that code (POST /api/v1/enrol). The office never sees a private key
and stores the code only as a SHA-256 hash, so its database holds nothing that could sign
in a school's name.

Revoking a school's keys refuses its uploads at once; re-keying revokes them and issues a
new code (an appliance replaced, or a key that may have leaked).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from filterd.sync.office.storage import School, Storage, StorageError
from filterd.sync.signing import SCHOOL_RE, b64e, key_id

CODE_DAYS = 14
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O, 1/I: read over the phone


class EnrolmentError(StorageError):
    """A code that is wrong, used, expired or for another school."""


@dataclass(frozen=True, slots=True)
class EnrolmentCode:
    school_id: str
    code: str
    expires_at: str

    def line(self) -> str:
        return self.code


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def code_hash(code: str) -> str:
    norm = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(b"filterd-enrolment:" + norm.encode()).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(20))   # 100 bits
    return "-".join(raw[i:i + 4] for i in range(0, 20, 4))


def issue_code(storage: Storage, school_id: str, *, now: datetime | None = None
               ) -> EnrolmentCode:
    now = now or _now()
    code = new_code()
    expires = _stamp(now + timedelta(days=CODE_DAYS))
    with storage.transaction() as tx:
        # one open code per school: a new one replaces any unused older one
        tx.execute("DELETE FROM enrolment_codes WHERE school_id = ? AND used_at IS NULL",
                   [school_id])
        tx.execute("INSERT INTO enrolment_codes (code_sha256, school_id, created_at, expires_at)"
                   " VALUES (?, ?, ?, ?)", [code_hash(code), school_id, _stamp(now), expires])
    return EnrolmentCode(school_id, code, expires)


def enrol_school(storage: Storage, school_id: str, name: str, district: str,
                 province: str) -> EnrolmentCode:
    if not SCHOOL_RE.match(school_id):
        raise ValueError(f"school id {school_id!r}: use letters, digits, '.', '_' or '-' "
                         "(at most 64)")
    if not (name.strip() and district.strip() and province.strip()):
        raise ValueError("name, district and province are required")
    storage.add_school(School(school_id, name.strip(), district.strip(), province.strip(), "",
                              _stamp(_now())))
    return issue_code(storage, school_id)


def revoke_school(storage: Storage, school_id: str, *, now: datetime | None = None) -> int:
    """Refuse every key of the school from now on (and any unused code); returns how many
    keys were revoked."""
    if storage.school(school_id) is None:
        raise StorageError(f"no school {school_id!r}")
    with storage.transaction() as tx:
        n = tx.execute("UPDATE school_keys SET revoked_at = ? WHERE school_id = ?"
                       " AND revoked_at IS NULL", [_stamp(now or _now()), school_id])
        tx.execute("DELETE FROM enrolment_codes WHERE school_id = ? AND used_at IS NULL",
                   [school_id])
    return n


def rekey_school(storage: Storage, school_id: str) -> EnrolmentCode:
    """Revoke the school's keys and issue a new one-time code for its appliance."""
    revoke_school(storage, school_id)
    return issue_code(storage, school_id)


def complete_enrolment(storage: Storage, school_id: str, code: str, public: bytes, *,
                       now: datetime | None = None) -> str:
    """Record the appliance's public key if `code` is this school's open code; returns the
    key id. One transaction: a refused attempt changes nothing."""
    now = now or _now()
    if len(public) != 32:
        raise EnrolmentError("the public key must be 32 bytes (raw Ed25519)")
    kid = key_id(public)
    with storage.transaction() as tx:
        rows = tx.query("SELECT school_id, expires_at, used_at FROM enrolment_codes"
                        " WHERE code_sha256 = ?", [code_hash(code)])
        if not rows or rows[0][0] != school_id:
            raise EnrolmentError("wrong enrolment code for this school")
        if rows[0][2] is not None:
            raise EnrolmentError("this enrolment code was already used; ask the office "
                                 "for a new one")
        if rows[0][1] < _stamp(now):
            raise EnrolmentError("this enrolment code has expired; ask the office for a new "
                                 "one")
        tx.execute("UPDATE enrolment_codes SET used_at = ? WHERE code_sha256 = ?",
                   [_stamp(now), code_hash(code)])
        tx.execute("INSERT INTO school_keys (school_id, key_id, public_key, added_at)"
                   " VALUES (?, ?, ?, ?) ON CONFLICT (school_id, key_id) DO NOTHING",
                   [school_id, kid, b64e(public), _stamp(now)])
    return kid
