"""Teachers' temporary overrides: "allow this domain for my group until 10:45".

The admin page writes them as JSON to `<data_dir>/overrides.json`; the file's one
codec is filterd.state.overrides, and `build_engine` and every reload read it into
an immutable OverrideSet. An override covers the domain and its subdomains for one group,
and never reaches above the protected list or the bypass names. Expired
overrides stay in the file until the admin page prunes them; `decide()`
ignores them by comparing `expires_at` with `query.at`, so no clock is read.
The admin page stores the *site* a teacher typed (`sites.site_for`: "www.facebook.com"
-> "facebook.com"); an override for a known service also covers the domains its
pages load from (`sites.SERVICES`: fbcdn.net, googlevideo.com …), so the page works,
not only its front door.

File format:

    {"version": 1, "overrides": [
      {"id": "ov-1", "group": "thcs", "domain": "youtube.com",
       "expires_at": "2026-11-25T10:45:00+07:00", "created_by": "co.lan",
       "reason": "Bài giảng Sinh học", "created_at": "2026-11-25T09:45:00+07:00"}]}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from filterd.policy.names import normalize_name
from filterd.policy.sites import site_domains

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Override:
    id: str
    group: str
    domain: str
    expires_at: datetime
    created_by: str
    reason: str
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ValueError("an override needs an id")
        if not self.group or not isinstance(self.group, str):
            raise ValueError("an override needs a group")
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        if self.created_at is not None and self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        object.__setattr__(self, "domain", normalize_name(self.domain))

    def active(self, at: datetime) -> bool:
        return at < self.expires_at

    def to_dict(self) -> dict:
        d = {"id": self.id, "group": self.group, "domain": self.domain,
             "expires_at": self.expires_at.isoformat(), "created_by": self.created_by,
             "reason": self.reason}
        if self.created_at is not None:
            d["created_at"] = self.created_at.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Override:
        created = d.get("created_at")
        return cls(id=str(d["id"]), group=str(d["group"]), domain=str(d["domain"]),
                   expires_at=datetime.fromisoformat(d["expires_at"]),
                   created_by=str(d.get("created_by", "")), reason=str(d.get("reason", "")),
                   created_at=datetime.fromisoformat(created) if created else None)


class OverrideSet:
    """Immutable set of overrides, indexed by (group, domain) for the hot path."""

    __slots__ = ("_by_group", "_items")

    def __init__(self, overrides: Iterable[Override] = ()) -> None:
        self._items = tuple(overrides)
        by_group: dict[str, dict[str, tuple[Override, ...]]] = {}
        for o in self._items:
            g = by_group.setdefault(o.group, {})
            for domain in site_domains(o.domain):
                g[domain] = (*g.get(domain, ()), o)
        self._by_group = by_group

    def __iter__(self) -> Iterator[Override]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def match(self, group: str, parents: list[str], at: datetime) -> Override | None:
        """The active override for this group covering the name (most specific first)."""
        table = self._by_group.get(group)
        if not table:
            return None
        for p in parents:
            for o in table.get(p, ()):
                if at < o.expires_at:
                    return o
        return None

    def active(self, at: datetime) -> OverrideSet:
        return OverrideSet(o for o in self._items if o.active(at))

    def added(self, override: Override) -> OverrideSet:
        if any(o.id == override.id for o in self._items):
            raise ValueError(f"override id {override.id!r} already exists")
        return OverrideSet((*self._items, override))

    def removed(self, override_id: str) -> OverrideSet:
        return OverrideSet(o for o in self._items if o.id != override_id)



EMPTY = OverrideSet()
