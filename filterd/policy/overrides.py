"""Teachers' temporary overrides: "allow this domain for my group until 10:45".

The admin page writes them as JSON to `<data_dir>/overrides.json` (atomic
replace); `build_engine` and every reload read the file into an immutable
OverrideSet. An override covers the domain and its subdomains for one group,
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

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from filterd.errors import ConfigError
from filterd.policy.names import normalize_name
from filterd.policy.sites import site_domains
from filterd.state.atomic import atomic_write

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

    def to_json(self) -> str:
        return json.dumps({"version": FORMAT_VERSION,
                           "overrides": [o.to_dict() for o in self._items]},
                          ensure_ascii=False, indent=2)


EMPTY = OverrideSet()


def load_overrides(path: str | Path, groups: Iterable[str] | None = None) -> OverrideSet:
    """Read overrides.json; a missing file is an empty set, a broken one a ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return EMPTY
    except OSError as exc:
        raise ConfigError(f"cannot read overrides: {exc}", file=str(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION \
            or not isinstance(doc.get("overrides"), list):
        raise ConfigError(f'expected {{"version": {FORMAT_VERSION}, "overrides": [...]}}',
                          file=str(path))
    known = set(groups) if groups is not None else None
    out = []
    for i, d in enumerate(doc["overrides"]):
        key = f"overrides[{i}]"
        try:
            o = Override.from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"invalid override: {exc}", file=str(path), key=key) from None
        if known is not None and o.group not in known:
            raise ConfigError(f"override {o.id!r} names an unknown group {o.group!r}",
                              file=str(path), key=key)
        out.append(o)
    return OverrideSet(out)


def save_overrides(path: str | Path, overrides: OverrideSet) -> None:
    """Write atomically (filterd.state.atomic)."""
    atomic_write(path, overrides.to_json(), mode=0o640)
