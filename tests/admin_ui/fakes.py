"""A small stand-in for the policy engine, following CONTRACTS.md, for tests of the admin page.

It reads policies/*.yaml in the core's format (groups: label_vi, label_en, extends,
clients, block.always, unblock, allow, deny, safe_search, youtube) strictly enough
to refuse what the real loader refuses in these tests (unknown keys, unknown
categories, bad client entries), naming file, line and key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import yaml

from filterd.errors import ConfigError

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
GROUP_KEYS = {"label_vi", "label_en", "extends", "clients", "block", "unblock", "allow", "deny",
              "safe_search", "youtube", "block_mode", "abstract"}


@dataclass(frozen=True)
class FakeAdmin:
    listen: tuple[str, int] = ("127.0.0.1", 0)
    max_override_minutes: int = 60


@dataclass(frozen=True)
class FakeSync:
    office_key_file: Path | None = None    # not enrolled with an office
    forward_reports: bool = False


@dataclass(frozen=True)
class FakeConfig:
    data_dir: Path
    policy_dir: Path
    categories_file: Path
    sources_file: Path
    school_id: str = "test-school"
    school_name: str = "Trường thử"
    timezone: ZoneInfo = HCM
    admin: FakeAdmin = field(default_factory=FakeAdmin)
    sync: FakeSync = field(default_factory=FakeSync)
    source_file: Path | None = None

    @property
    def feeds_dir(self) -> Path:
        return self.data_dir / "feeds"


@dataclass(frozen=True)
class FakeGroup:
    id: str
    label_vi: str
    label_en: str
    block_always: dict
    block_during: dict
    allow: tuple
    abstract: bool = False


@dataclass(frozen=True)
class FakeDecision:
    action: str
    reason: str
    name: str
    group: str
    rule: str
    source: str
    category: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def text(self, lang: str = "vi", *, for_staff: bool = True) -> str:
        if self.blocked:
            return (f"{self.name}: chặn ({self.reason}, {self.category})" if lang == "vi"
                    else f"{self.name}: blocked ({self.reason}, {self.category})")
        return f"{self.name}: cho phép" if lang == "vi" else f"{self.name}: allowed"


class FakeEngine:
    """Groups from the policy files; a list index {name: category}; protected names."""

    INDEX: ClassVar[dict[str, str]] = {"bad.example": "adult", "bet.example": "gambling",
                                       "cp.example": "illegal"}
    PROTECTED: ClassVar[set[str]] = {"cp.example"}

    def __init__(self, groups: dict[str, FakeGroup], clients: list[tuple[str, str]],
                 overrides: list[dict]) -> None:
        self.groups = groups
        self.schedules: dict[str, Any] = {}
        rules = []
        for net, gid in clients:
            n = ipaddress.ip_network(net, strict=False)
            rules.append(SimpleNamespace(group=gid, kind="cidr" if n.num_addresses > 1 else "ip",
                                         first=int(n.network_address),
                                         size=n.num_addresses, version=n.version, text=net))
        self.policy = SimpleNamespace(clients=SimpleNamespace(rules=rules))
        self._clients = [(ipaddress.ip_network(n, strict=False), g) for n, g in clients]
        self.overrides = overrides

    def group_for(self, ip: str, mac: str | None = None) -> FakeGroup:
        addr = ipaddress.ip_address(ip)
        best = None
        for net, gid in self._clients:
            if addr in net and (best is None or net.prefixlen > best[0].prefixlen):
                best = (net, gid)
        return self.groups[best[1] if best else "unknown"]

    def decide(self, query: Any) -> FakeDecision:
        grp = self.group_for(query.client_ip, query.client_mac)
        name = query.name
        cat = self.INDEX.get(name)
        if name in self.PROTECTED:
            return FakeDecision("block", "protected", name, grp.id, name, "list protected", cat)
        for o in self.overrides:
            if o["group"] == grp.id and o["domain"] == name and \
                    datetime.fromisoformat(o["expires_at"]) > query.at:
                return FakeDecision("allow", "override", name, grp.id, name, f"override {o['id']}")
        if name in grp.allow:
            return FakeDecision("allow", "group_allow", name, grp.id, name, "policy")
        if cat and cat in grp.block_always:
            return FakeDecision("block", "category", name, grp.id, f"categories: {cat}",
                                "list fake", cat)
        return FakeDecision("allow", "default", name, grp.id, "", "builtin default")


def _line_of(text: str, key: str) -> int | None:
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(f"{key}:") or line.strip().startswith(f"- {key}"):
            return i
    return None


def fake_build_engine(config: Any, **_kw: Any) -> FakeEngine:
    cats = set((yaml.safe_load(Path(config.categories_file).read_text()) or {})["categories"])
    groups: dict[str, FakeGroup] = {}
    clients: list[tuple[str, str]] = []
    raw_groups: dict[str, tuple[dict, str, str]] = {}
    for path in sorted(Path(config.policy_dir).glob("*.yaml")):
        text = path.read_text()
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"not YAML: {exc}", file=str(path)) from None
        for gid, body in (doc.get("groups") or {}).items():
            raw_groups[gid] = (body or {}, str(path), text)
    for gid, (body, file, text) in raw_groups.items():
        for key in body:
            if key not in GROUP_KEYS:
                raise ConfigError("unknown key", file=file, line=_line_of(text, key),
                                  key=f"groups.{gid}.{key}")
        parent = raw_groups.get(body.get("extends") or "", ({}, "", ""))[0]
        always = set((parent.get("block") or {}).get("always") or ())
        always -= set(body.get("unblock") or ())
        always |= set((body.get("block") or {}).get("always") or ())
        for c in always:
            if c not in cats:
                raise ConfigError(f"unknown category {c!r}", file=file, line=_line_of(text, c),
                                  key=f"groups.{gid}.block.always")
        for c in body.get("clients") or ():
            try:
                ipaddress.ip_network(str(c), strict=False)
            except ValueError:
                raise ConfigError(f"not an IP, CIDR, range or MAC address: {c!r}", file=file,
                                  line=_line_of(text, str(c)),
                                  key=f"groups.{gid}.clients") from None
            clients.append((str(c), gid))
        groups[gid] = FakeGroup(gid, body.get("label_vi", gid), body.get("label_en", gid),
                                {c: "policy" for c in always}, {},
                                tuple(body.get("allow") or ()), bool(body.get("abstract")))
    groups.setdefault("unknown", FakeGroup("unknown", "Không rõ", "Unknown", {}, {}, ()))
    overrides = []
    ov = Path(config.data_dir) / "overrides.json"
    if ov.exists():
        import json

        overrides = json.loads(ov.read_text())["overrides"]
    return FakeEngine(groups, clients, overrides)


POLICY = """\
# Test policy (comments must survive edits)
groups:
  base:
    label_vi: Cơ sở
    label_en: Base
    abstract: true
    block:
      always: [adult]
  thcs:
    label_vi: THCS
    label_en: Lower secondary
    extends: base
    clients:
      - 127.0.0.0/29
    allow:
      - school.example
  staff:
    label_vi: Giáo viên
    label_en: Staff
    clients:
      - 127.0.1.0/24
"""
