"""Enrol a school: record it and issue its upload credential (shown once)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from filterd.sync.office.storage import School, Storage
from filterd.sync.signing import SCHOOL_RE, Credential


def enrol_school(storage: Storage, school_id: str, name: str, district: str,
                 province: str) -> Credential:
    if not SCHOOL_RE.match(school_id):
        raise ValueError(f"school id {school_id!r}: use letters, digits, '.', '_' or '-' "
                         "(at most 64)")
    if not (name.strip() and district.strip() and province.strip()):
        raise ValueError("name, district and province are required")
    cred = Credential.issue(school_id)
    storage.add_school(School(school_id, name.strip(), district.strip(), province.strip(),
                              base64.urlsafe_b64encode(cred.key).decode().rstrip("="),
                              datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return cred


def rekey_school(storage: Storage, school_id: str) -> Credential:
    """A new credential for a school whose key leaked or whose appliance was replaced."""
    cred = Credential.issue(school_id)
    storage.rekey_school(school_id, base64.urlsafe_b64encode(cred.key).decode().rstrip("="))
    return cred
