"""Who receives alerts: one validated Recipient per member of staff, and their quiet hours.

A recipient has a role (the policy's rules name roles), an e-mail address and/or a
webhook URL, optionally the groups they are class teacher of (then they hear only of
devices in those groups), and optional quiet hours ("21:00-06:30", in the school's
zone) during which their messages wait until the quiet hours end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from filterd.errors import FilterdError
from filterd.policy.alert_rules import ROLES

# local@domain.tld: no spaces, no display name, one @, a dotted domain.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                    r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_GROUP = re.compile(r"^[a-z0-9_]+$")


class RecipientError(FilterdError, ValueError):
    """A recipient value is not valid; `field` names which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def valid_email(text: str) -> bool:
    name, addr = parseaddr(text)
    return bool(_EMAIL.match(text)) and addr == text and not name and len(text) <= 254


def valid_webhook(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("https", "http") and bool(parts.hostname) and " " not in text


def parse_quiet(text: str) -> tuple[time, time] | None:
    m = _QUIET.match(text)
    if not m:
        return None
    a, b = time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))
    return (a, b) if a != b else None


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    role: str
    email: str = ""
    webhook: str = ""
    groups: tuple[str, ...] = ()
    quiet: str = ""
    enabled: bool = True
    id: int | None = None

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > 120:
            raise RecipientError("name", "A name is needed (up to 120 characters).")
        if self.role not in ROLES:
            raise RecipientError("role", "Choose one of the roles.")
        if self.email and not valid_email(self.email):
            raise RecipientError("email", "This is not an e-mail address.")
        if self.webhook and not valid_webhook(self.webhook):
            raise RecipientError("webhook", "A webhook is an https:// address.")
        if not self.email and not self.webhook:
            raise RecipientError("email", "Give an e-mail address or a webhook.")
        for g in self.groups:
            if not _GROUP.match(g):
                raise RecipientError("groups", "Unknown group.")
        if self.quiet and parse_quiet(self.quiet) is None:
            raise RecipientError("quiet", "Quiet hours look like 21:00-06:30.")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recipient:
        return cls(name=row["name"], role=row["role"], email=row["email"],
                   webhook=row["webhook"],
                   groups=tuple(g for g in row["groups"].split(",") if g),
                   quiet=row["quiet"], enabled=bool(row["enabled"]), id=row["id"])

    def to_values(self) -> dict[str, Any]:
        return {"name": self.name.strip(), "role": self.role, "email": self.email,
                "webhook": self.webhook, "groups": ",".join(self.groups), "quiet": self.quiet,
                "enabled": int(self.enabled)}

    def hears_of(self, group_id: str | None) -> bool:
        """Class teachers (anyone with groups) hear only of their groups' devices."""
        return not self.groups or (group_id is not None and group_id in self.groups)

    def channels(self) -> list[tuple[str, str]]:
        out = []
        if self.email:
            out.append(("email", self.email))
        if self.webhook:
            out.append(("webhook", self.webhook))
        return out

    def not_before(self, now: float, tz: tzinfo) -> float:
        """`now`, or the end of the quiet hours when `now` falls inside them."""
        q = parse_quiet(self.quiet) if self.quiet else None
        if q is None:
            return now
        start, end = q
        local = datetime.fromtimestamp(now, tz)
        t = local.time()
        inside = (start <= t < end) if start < end else (t >= start or t < end)
        if not inside:
            return now
        until = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if until <= local:
            until += timedelta(days=1)
        return until.timestamp()
