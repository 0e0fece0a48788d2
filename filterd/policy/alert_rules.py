"""Alert rules in the policy (`alerts:`): what tells the school's staff at once, and whom.

A policy file may hold one `alerts:` mapping (the shipped one is policies/alerts.yaml):

    alerts:
      devices: {"aa:bb:cc:dd:ee:01": "Máy tính bảng 6A-01"}   # how the school names devices
      health_to: [it]                                          # appliance health alerts
      rules:
        bao_ve:
          label_vi: ...                 # words on the alert
          label_en: ...
          when: protected               # protected | category | bypass
          categories: [violence]        # `category`: required; `bypass`: extra categories
          groups: [hoc_sinh]            # default: every group; an abstract group = its tiers
          to: [principal, counsellor, class_teacher]
          attempts: 1                   # alert once this many fall within `within_minutes`
          distinct_names: false         # count different names, not repeated queries
          within_minutes: 10            # one alert per device per rule per this long
          digest: false                 # true: in the daily digest, not at once

Validated with the rest of the policy (every problem named by file, line and key), so
a bad rule refuses the whole reload and the running policy keeps alerting. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from filterd.policy.catalog import Catalog
from filterd.yamlsrc import Problems, YList, YMap, type_name

WHEN = ("protected", "category", "bypass")
# Who receives alerts: the school's own staff, by role (the people are set on the admin page;
# the words are filterd.words' kind alert_role).
ROLES = ("principal", "counsellor", "class_teacher", "it")
# Categories that are an attempt to get around the filter (besides the bypass monitor).
BYPASS_CATEGORIES = frozenset(("doh", "vpn", "redirector"))
RULE_KEYS = ("label_vi", "label_en", "when", "categories", "groups", "to", "attempts",
             "distinct_names", "within_minutes", "digest")
TOP_KEYS = ("devices", "health_to", "rules")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: str
    label_vi: str
    label_en: str
    when: str
    categories: frozenset[str]
    groups: frozenset[str] | None      # None: every group
    to: tuple[str, ...]
    attempts: int = 1
    distinct_names: bool = False
    within_minutes: int = 10
    digest: bool = False
    file: str = ""
    line: int = 0

    def label(self, lang: str = "vi") -> str:
        return self.label_en if lang == "en" else self.label_vi

    @property
    def window(self) -> float:
        return self.within_minutes * 60.0


@dataclass(frozen=True)
class AlertRules:
    rules: tuple[AlertRule, ...] = ()
    devices: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    health_to: tuple[str, ...] = ("it",)

    def by_id(self, rule_id: str) -> AlertRule | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None

    def device_name(self, ip: str | None, mac: str | None) -> str | None:
        """The school's name for a device: its MAC first (it follows the device), then IP."""
        if mac and mac.lower() in self.devices:
            return self.devices[mac.lower()]
        if ip and ip in self.devices:
            return self.devices[ip]
        return None


NO_ALERTS = AlertRules()


def _text(body: YMap, key: str, path: str, problems: Problems) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v.strip():
        problems.add("missing text (every rule needs label_vi and label_en)" if v is None
                     else f"expected text, got {type_name(v)}", body, key if v is not None
                     else None, path=f"{path}.{key}")
        return ""
    return v.strip()


def _roles(value: Any, where: YMap, key: str, path: str, problems: Problems) -> tuple[str, ...]:
    if not isinstance(value, YList) or not value:
        problems.add(f"expected a list of roles ({', '.join(ROLES)}), got {type_name(value)}",
                     where, key, path=path)
        return ()
    out = []
    for i, r in enumerate(value):
        if r not in ROLES:
            problems.add(f"unknown role {r!r} (known: {', '.join(ROLES)})", value, i, path=path)
        elif r not in out:
            out.append(r)
    return tuple(out)


def _groups(value: YList, path: str, groups: Mapping[str, Any], problems: Problems
            ) -> frozenset[str]:
    out: set[str] = set()
    children: dict[str, list[str]] = {}
    for gid, g in groups.items():
        if getattr(g, "extends", None):
            children.setdefault(g.extends, []).append(gid)

    def add(gid: str) -> None:   # an abstract group stands for every group extending it
        if gid in out:
            return
        out.add(gid)
        for child in children.get(gid, ()):
            add(child)

    for i, gid in enumerate(value):
        if not isinstance(gid, str) or gid not in groups:
            problems.add(f"unknown group {gid!r} (defined: {', '.join(groups)})", value, i,
                         path=path)
        else:
            add(gid)
    return frozenset(out)


def _int(body: YMap, key: str, default: int, lo: int, hi: int, path: str,
         problems: Problems) -> int:
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        problems.add(f"expected a whole number from {lo} to {hi}, got {v!r}", body, key,
                     path=f"{path}.{key}")
        return default
    return v


def _bool(body: YMap, key: str, path: str, problems: Problems) -> bool:
    v = body.get(key, False)
    if not isinstance(v, bool):
        problems.add("expected true or false", body, key, path=f"{path}.{key}")
        return False
    return v


def _rule(rid: Any, body: Any, where: YMap, groups: Mapping[str, Any], catalog: Catalog,
          problems: Problems) -> AlertRule | None:
    path = f"alerts.rules.{rid}"
    if not isinstance(rid, str) or not _ID.match(rid):
        problems.add("rule ids are lowercase letters, digits and _", where, rid, path=path)
        return None
    if not isinstance(body, YMap):
        problems.add(f"expected a mapping, got {type_name(body)}", where, rid, path=path)
        return None
    before = len(problems.errors)
    for key in body:
        if key not in RULE_KEYS:
            problems.add(f"unknown key (known keys: {', '.join(RULE_KEYS)})", body, key,
                         path=f"{path}.{key}")
    when = body.get("when")
    if when not in WHEN:
        problems.add(f"must be one of {', '.join(WHEN)}, got {when!r}", body,
                     "when" if "when" in body else None, path=f"{path}.when")
    cats: set[str] = set()
    raw_cats = body.get("categories")
    if raw_cats is not None:
        if not isinstance(raw_cats, YList):
            problems.add(f"expected a list of categories, got {type_name(raw_cats)}", body,
                         "categories", path=f"{path}.categories")
        else:
            for i, c in enumerate(raw_cats):
                if not isinstance(c, str) or c not in catalog:
                    problems.add(f"unknown category {c!r} (known: {', '.join(catalog)})",
                                 raw_cats, i, path=f"{path}.categories")
                else:
                    cats.add(c)
    if when == "category" and raw_cats is None:
        problems.add("`when: category` needs `categories:`", body, "when", path=f"{path}.when")
    if when == "protected" and raw_cats is not None:
        problems.add("`when: protected` takes no categories (the protected list is one)",
                     body, "categories", path=f"{path}.categories")
    rule_groups = None
    if "groups" in body:
        if not isinstance(body["groups"], YList) or not body["groups"]:
            problems.add(f"expected a list of groups, got {type_name(body['groups'])}", body,
                         "groups", path=f"{path}.groups")
        else:
            rule_groups = _groups(body["groups"], f"{path}.groups", groups, problems)
    to = _roles(body.get("to"), body, "to", f"{path}.to", problems)
    rule = AlertRule(
        id=rid, label_vi=_text(body, "label_vi", path, problems),
        label_en=_text(body, "label_en", path, problems), when=str(when),
        categories=frozenset(cats), groups=rule_groups, to=to,
        attempts=_int(body, "attempts", 1, 1, 10_000, path, problems),
        distinct_names=_bool(body, "distinct_names", path, problems),
        within_minutes=_int(body, "within_minutes", 10, 1, 24 * 60, path, problems),
        digest=_bool(body, "digest", path, problems),
        file=where.file, line=where.line_of(rid))
    return rule if len(problems.errors) == before else None


def _devices(value: Any, where: YMap, problems: Problems) -> dict[str, str]:
    if value is None:   # the key with only comments under it
        return {}
    if not isinstance(value, YMap):
        problems.add(f"expected a mapping: IP or MAC -> name, got {type_name(value)}", where,
                     "devices", path="alerts.devices")
        return {}
    out = {}
    for key, name in value.items():
        path = f"alerts.devices.{key}"
        k = str(key).strip().lower()
        if not _MAC.match(k):
            try:
                k = str(ipaddress.ip_address(k))
            except ValueError:
                problems.add(f"expected an IP address or a MAC (aa:bb:cc:dd:ee:ff), got {key!r}",
                             value, key, path=path)
                continue
        if not isinstance(name, str) or not name.strip():
            problems.add(f"expected the device's name, got {type_name(name)}", value, key,
                         path=path)
            continue
        out[k] = name.strip()
    return out


def parse_alert_rules(doc: YMap, value: Any, groups: Mapping[str, Any], catalog: Catalog,
                      problems: Problems) -> AlertRules:
    """Validate the `alerts:` mapping found in `doc`; problems go to `problems`."""
    if not isinstance(value, YMap):
        problems.add(f"expected a mapping with rules:, devices:, health_to:, got "
                     f"{type_name(value)}", doc, "alerts")
        return NO_ALERTS
    for key in value:
        if key not in TOP_KEYS:
            problems.add(f"unknown key (known keys: {', '.join(TOP_KEYS)})", value, key,
                         path=f"alerts.{key}")
    rules = []
    raw_rules = value.get("rules")
    if raw_rules is not None:
        if not isinstance(raw_rules, YMap):
            problems.add(f"expected a mapping of rules, got {type_name(raw_rules)}", value,
                         "rules", path="alerts.rules")
        else:
            for rid, body in raw_rules.items():
                r = _rule(rid, body, raw_rules, groups, catalog, problems)
                if r is not None:
                    rules.append(r)
    devices = _devices(value["devices"], value, problems) if "devices" in value else {}
    health_to = _roles(value["health_to"], value, "health_to", "alerts.health_to", problems) \
        if "health_to" in value else ("it",)
    return AlertRules(tuple(rules), MappingProxyType(devices), health_to)
