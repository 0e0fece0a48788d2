"""Load and validate the policy directory (`policies/*.yaml`) into an immutable Policy.

Every `*.yaml` file in the directory is read; top-level keys are merged:
`schedules`, `groups` and `education` may be split across files (a name defined
twice is an error), the settings (`version`, `default_group`, `protected`) may
appear in one file only. Every problem is collected and raised together as
ConfigError(s) naming file, line and key; nothing is half-loaded.

Group inheritance (`extends:`): a group starts as a copy of its parent and then
- scalar settings it gives (safe_search, youtube, block_mode, intercept) replace the
  parent's;
- `unblock:` removes inherited category blocks (always and in every schedule);
- `block.always` / `block.during` add to what is left;
- `allow` / `deny` entries add to the parent's.
Labels, descriptions, clients and `abstract` are never inherited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from filterd.errors import ConfigError
from filterd.policy.alert_rules import NO_ALERTS, AlertRules, parse_alert_rules
from filterd.policy.catalog import Catalog
from filterd.policy.clients import ClientMap, ClientRule, parse_client
from filterd.policy.decision import BlockMode, RuleSource
from filterd.policy.domains import DomainEntry, DomainTable, parse_entry
from filterd.policy.schedules import Schedule, parse_schedule
from filterd.policy.sites import site_domains
from filterd.words.messages import type_code
from filterd.yamlsrc import Problems, YList, YMap
from filterd.yamlsrc import load as load_yaml

LEVELS = ("off", "moderate", "strict")
GROUP_BLOCK_MODES = ("address", "nxdomain", "null")
TOP_KEYS = ("version", "default_group", "protected", "education", "schedules", "groups",
            "alerts")
SETTING_KEYS = ("version", "default_group", "protected", "alerts")
GROUP_KEYS = ("label_vi", "label_en", "description_vi", "description_en", "abstract", "extends",
              "clients", "block", "unblock", "allow", "deny", "safe_search", "youtube",
              "block_mode", "intercept")
BUILTIN_DEFAULT = "unknown"


@dataclass(frozen=True)
class Group:
    """One resolved group (inheritance already applied)."""

    id: str
    label_vi: str
    label_en: str
    description_vi: str
    description_en: str
    abstract: bool
    extends: str | None
    block_always: Mapping[str, RuleSource]               # category -> where it was blocked
    block_during: Mapping[str, Mapping[str, RuleSource]]  # schedule -> category -> where
    allow: DomainTable
    deny: DomainTable
    safe_search: str
    youtube: str
    block_mode: BlockMode
    source: RuleSource = field(default=RuleSource("builtin", "policy"))
    intercept: bool = False    # HTTPS interception wanted (needs the school CA on devices)

    def label(self, lang: str = "vi") -> str:
        return self.label_en if lang == "en" else self.label_vi

    def description(self, lang: str = "vi") -> str:
        return self.description_en if lang == "en" else self.description_vi


@dataclass(frozen=True)
class Policy:
    """Everything the policy files say, validated; the engine compiles it for speed."""

    groups: Mapping[str, Group]
    schedules: Mapping[str, Schedule]
    clients: ClientMap
    default_group: str
    education: DomainTable
    protected: DomainTable
    files: tuple[str, ...]
    alerts: AlertRules = NO_ALERTS    # who is told at once of what (alert_rules.py)


def builtin_unknown_group(catalog: Catalog) -> Group:
    """Fail-closed group for unknown clients when a policy names no default_group."""
    src = RuleSource("builtin", "default_group")
    return Group(
        BUILTIN_DEFAULT, "Thiết bị chưa xác định", "Unidentified device",
        "Thiết bị không thuộc nhóm nào: áp dụng mức lọc nghiêm nhất.",
        "A device in no group: the strictest filtering applies.", False, None,
        MappingProxyType(dict.fromkeys(catalog, src)), MappingProxyType({}),
        DomainTable(), DomainTable(), "strict", "strict", BlockMode.ADDRESS, src)


class _Raw:
    """The merged raw documents with where each top-level item came from."""

    def __init__(self) -> None:
        self.settings: dict[str, tuple[YMap, Any]] = {}
        self.schedules: dict[str, tuple[YMap, Any]] = {}
        self.groups: dict[str, tuple[YMap, Any]] = {}
        self.education: list[tuple[YList, int, Any]] = []


def _policy_files(path: Path) -> list[Path]:
    if path.is_dir():
        # dotfiles are editors' and atomic writers' temporary files, never policy
        return sorted(p for p in path.glob("*.yaml") if p.is_file() and not p.name.startswith("."))
    return [path]


def _read(files: list[Path], problems: Problems) -> _Raw:
    raw = _Raw()
    for f in files:
        try:
            doc = load_yaml(f)
        except ConfigError as exc:
            problems.extend(exc)
            continue
        if doc is None:
            continue
        if not isinstance(doc, YMap):
            problems.add("shape.top_mapping", file=str(f), line=1, got_type=type_code(doc))
            continue
        for key, value in doc.items():
            if key not in TOP_KEYS:
                problems.add("shape.unknown_key", doc, key, known=", ".join(TOP_KEYS))
            elif key in SETTING_KEYS:
                if key in raw.settings:
                    first = raw.settings[key][0]
                    problems.add("policy.setting_twice", doc, key,
                                 place=f"{first.file}:{first.line_of(key)}")
                else:
                    raw.settings[key] = (doc, value)
            elif key == "education":
                if not isinstance(value, YList):
                    problems.add("shape.domain_list", doc, key, got_type=type_code(value))
                else:
                    raw.education.extend((value, i, v) for i, v in enumerate(value))
            else:
                target = raw.schedules if key == "schedules" else raw.groups
                if not isinstance(value, YMap):
                    problems.add("shape.mapping_of", doc, key, what=key,
                                 got_type=type_code(value))
                    continue
                for name, body in value.items():
                    if name in target:
                        first = target[name][0]
                        problems.add("policy.defined_twice", value, name, path=f"{key}.{name}",
                                     what=key[:-1], name=name,
                                     place=f"{first.file}:{first.line_of(name)}")
                    else:
                        target[name] = (value, body)
    return raw


def _domain_list(value: Any, where: YMap, key: str, path: str, problems: Problems
                 ) -> list[DomainEntry]:
    if value is None:
        return []
    if not isinstance(value, YList):
        problems.add("shape.domain_list", where, key, path=path, got_type=type_code(value))
        return []
    out = []
    for i, item in enumerate(value):
        line = value.line_of(i)
        if not isinstance(item, str):
            problems.add("shape.domain", value, i, path=path, got_type=type_code(item))
            continue
        try:
            domain, exact = parse_entry(item)
        except ValueError as exc:
            problems.add_error(exc, value, i, path=path)
            continue
        src = RuleSource("policy", value.file, line=line)
        out.append(DomainEntry(domain, exact, src))
        if key == "allow" and not exact:   # a service's site: its pages' other domains too
            out.extend(DomainEntry(d, False, src) for d in site_domains(domain)[1:])
    return out


def read_domain_file(path: Path, kind: str, problems: Problems) -> list[DomainEntry]:
    """A plain list: one entry per line (`example.com` or `=host.example.com`), `#` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add("policy.domain_file_unreadable", file=str(path), what=kind, error=str(exc))
        return []
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            domain, exact = parse_entry(entry)
        except ValueError as exc:
            problems.add_error(exc, file=str(path), line=n)
            continue
        out.append(DomainEntry(domain, exact, RuleSource("policy", str(path), line=n)))
    return out


@dataclass
class _Partial:
    """A group's own settings before inheritance."""

    id: str
    where: YMap
    body: YMap
    extends: str | None = None
    always: dict[str, RuleSource] = field(default_factory=dict)
    during: dict[str, dict[str, RuleSource]] = field(default_factory=dict)
    unblock: set[str] = field(default_factory=set)
    allow: list[DomainEntry] = field(default_factory=list)
    deny: list[DomainEntry] = field(default_factory=list)
    scalars: dict[str, Any] = field(default_factory=dict)
    clients: list[ClientRule] = field(default_factory=list)


def _text_field(body: YMap, key: str, path: str, problems: Problems, *, required: bool) -> str:
    v = body.get(key)
    if v is None:
        if required:
            problems.add("policy.label_missing", body, None, path=f"{path}.{key}")
        return ""
    if not isinstance(v, str) or not v.strip():
        problems.add("shape.text", body, key, path=f"{path}.{key}", got_type=type_code(v))
        return ""
    return v.strip()


def _category_list(value: Any, where: YMap | YList, key: Any, path: str, catalog: Catalog,
                   problems: Problems) -> dict[str, RuleSource]:
    if not isinstance(value, YList):
        problems.add("shape.category_list", where, key, path=path, got_type=type_code(value))
        return {}
    out = {}
    for i, cat in enumerate(value):
        if not isinstance(cat, str) or cat not in catalog:
            problems.add("policy.unknown_category", value, i, path=path, value=cat,
                         known=", ".join(catalog))
            continue
        out[cat] = RuleSource("policy", value.file, line=value.line_of(i))
    return out


def _parse_group(gid: str, where: YMap, body: Any, schedules: Mapping[str, Any],
                 catalog: Catalog, problems: Problems) -> _Partial | None:
    path = f"groups.{gid}"
    if not isinstance(gid, str) or not gid.replace("_", "").isalnum() or not gid.islower():
        problems.add("policy.group_id", where, gid, path=path)
        return None
    if not isinstance(body, YMap):
        problems.add("shape.mapping", where, gid, path=path, got_type=type_code(body))
        return None
    p = _Partial(gid, where, body)
    for key in body:
        if key not in GROUP_KEYS:
            problems.add("shape.unknown_key", body, key, path=f"{path}.{key}",
                         known=", ".join(GROUP_KEYS))
    ext = body.get("extends")
    if ext is not None:
        if not isinstance(ext, str):
            problems.add("shape.group_id", body, "extends", path=f"{path}.extends",
                         got_type=type_code(ext))
        else:
            p.extends = ext
    for key in ("abstract", "intercept"):
        if key in body and not isinstance(body[key], bool):
            problems.add("shape.bool", body, key, path=f"{path}.{key}")
        elif key == "intercept" and key in body:
            p.scalars[key] = body[key]
    for key, options in (("safe_search", LEVELS), ("youtube", LEVELS),
                         ("block_mode", GROUP_BLOCK_MODES)):
        if key in body:
            v = body[key]
            if v not in options:
                problems.add("shape.one_of", body, key, path=f"{path}.{key}",
                             options=", ".join(options), value=v)
            else:
                p.scalars[key] = v
    block = body.get("block")
    if block is not None:
        if not isinstance(block, YMap):
            problems.add("shape.block", body, "block", path=f"{path}.block",
                         got_type=type_code(block))
        else:
            for key in block:
                if key not in ("always", "during"):
                    problems.add("shape.unknown_key", block, key, path=f"{path}.block.{key}",
                                 known="always, during")
            if "always" in block:
                p.always = _category_list(block["always"], block, "always",
                                          f"{path}.block.always", catalog, problems)
            during = block.get("during")
            if during is not None:
                if not isinstance(during, YMap):
                    problems.add("shape.during", block, "during", path=f"{path}.block.during")
                else:
                    for sid, cats in during.items():
                        spath = f"{path}.block.during.{sid}"
                        if sid not in schedules:
                            problems.add("policy.unknown_schedule", during, sid, path=spath,
                                         value=sid, known=", ".join(schedules) or "-")
                            continue
                        p.during[sid] = _category_list(cats, during, sid, spath, catalog,
                                                       problems)
    if "unblock" in body:
        p.unblock = set(_category_list(body["unblock"], body, "unblock", f"{path}.unblock",
                                       catalog, problems))
    p.allow = _domain_list(body.get("allow"), body, "allow", f"{path}.allow", problems)
    p.deny = _domain_list(body.get("deny"), body, "deny", f"{path}.deny", problems)
    clients = body.get("clients")
    if clients is not None:
        if not isinstance(clients, YList):
            problems.add("shape.clients", body, "clients", path=f"{path}.clients",
                         got_type=type_code(clients))
        else:
            for i, c in enumerate(clients):
                try:
                    p.clients.append(parse_client(c, gid, clients.file, clients.line_of(i)))
                except ValueError as exc:
                    problems.add_error(exc, clients, i, path=f"{path}.clients")
    return p


def _resolve(partials: dict[str, _Partial], catalog: Catalog, problems: Problems
             ) -> dict[str, Group]:
    resolved: dict[str, Group] = {}

    failed: set[str] = set()

    def resolve(gid: str, chain: tuple[str, ...]) -> Group | None:
        if gid in resolved:
            return resolved[gid]
        if gid in failed:
            return None
        p = partials[gid]
        parent: Group | None = None
        if p.extends is not None:
            if p.extends in chain or p.extends == gid:
                cycle = " -> ".join((*chain, gid, p.extends))
                problems.add("policy.extends_cycle", p.body, "extends",
                             path=f"groups.{gid}.extends", cycle=cycle)
                failed.add(gid)
                return None
            if p.extends not in partials:
                problems.add("policy.extends_unknown", p.body, "extends",
                             path=f"groups.{gid}.extends", value=p.extends)
                failed.add(gid)
                return None
            parent = resolve(p.extends, (*chain, gid))
            if parent is None:   # the parent's own problem is reported once, at the parent
                failed.add(gid)
                return None
        always = dict(parent.block_always) if parent else {}
        during = {s: dict(c) for s, c in parent.block_during.items()} if parent else {}
        for cat in p.unblock:
            always.pop(cat, None)
            for cats in during.values():
                cats.pop(cat, None)
        always.update(p.always)
        for sid, cats in p.during.items():
            during.setdefault(sid, {}).update(cats)
        scal = {"safe_search": parent.safe_search if parent else "off",
                "youtube": parent.youtube if parent else "off",
                "block_mode": parent.block_mode.value if parent else "address",
                "intercept": parent.intercept if parent else False}
        scal.update(p.scalars)
        allow = DomainTable(p.allow).merged(parent.allow) if parent else DomainTable(p.allow)
        deny = DomainTable(p.deny).merged(parent.deny) if parent else DomainTable(p.deny)
        b = p.body
        path = f"groups.{gid}"
        g = Group(
            id=gid,
            label_vi=_text_field(b, "label_vi", path, problems, required=True),
            label_en=_text_field(b, "label_en", path, problems, required=True),
            description_vi=_text_field(b, "description_vi", path, problems, required=False),
            description_en=_text_field(b, "description_en", path, problems, required=False),
            abstract=b.get("abstract") is True,
            extends=p.extends,
            block_always=MappingProxyType(always),
            block_during=MappingProxyType({s: MappingProxyType(c)
                                           for s, c in during.items() if c}),
            allow=allow, deny=deny,
            safe_search=scal["safe_search"], youtube=scal["youtube"],
            block_mode=BlockMode(scal["block_mode"]),
            source=RuleSource("policy", p.where.file, line=p.where.line_of(gid)),
            intercept=scal["intercept"],
        )
        resolved[gid] = g
        return g

    for gid in partials:
        resolve(gid, ())
    return resolved


def _protected(raw: _Raw, base: Path, problems: Problems) -> list[DomainEntry]:
    if "protected" not in raw.settings:
        return []
    doc, value = raw.settings["protected"]
    if not isinstance(value, YMap):
        problems.add("shape.protected", doc, "protected")
        return []
    out: list[DomainEntry] = []
    for key in value:
        if key not in ("files", "feed"):
            problems.add("shape.unknown_key", value, key, path=f"protected.{key}",
                         known="feed, files")
    files = value.get("files", [])
    if not isinstance(files, YList):
        problems.add("shape.file_list", value, "files", path="protected.files")
        files = []
    where = Path(doc.file).parent
    for i, f in enumerate(files):
        if not isinstance(f, str) or not f:
            problems.add("shape.file_name", files, i, path="protected.files")
            continue
        p = Path(f) if Path(f).is_absolute() else where / f
        if not p.is_file():
            problems.add("policy.protected_missing", files, i, path="protected.files",
                         file_path=str(p))
            continue
        out.extend(read_domain_file(p, "protected", problems))
    feed = value.get("feed")
    if feed is not None:
        # The authority feed: a plain list delivered by the education/information office.
        if not isinstance(feed, str) or not feed:
            problems.add("shape.file_path", value, "feed", path="protected.feed")
        else:
            p = Path(feed) if Path(feed).is_absolute() else where / feed
            if not p.is_file():
                problems.add("policy.feed_missing", value, "feed", path="protected.feed",
                             file_path=str(p))
            else:
                out.extend(read_domain_file(p, "protected feed", problems))
    return out


def load_policy(path: str | Path, catalog: Catalog) -> Policy:
    """Read every policy file under `path` (a directory or one file); raise on any problem."""
    path = Path(path)
    problems = Problems()
    if not path.exists():
        raise ConfigError.coded("policy.not_found", file=str(path))
    files = _policy_files(path)
    if not files:
        raise ConfigError.coded("policy.no_files", file=str(path))
    raw = _read(files, problems)

    if "version" in raw.settings:
        doc, v = raw.settings["version"]
        if v != 1:
            problems.add("policy.version", doc, "version", value=v)

    schedules: dict[str, Schedule] = {}
    for sid, (where, body) in raw.schedules.items():
        if not isinstance(sid, str) or not sid.replace("_", "").isalnum():
            problems.add("policy.schedule_id", where, sid, path=f"schedules.{sid}")
            continue
        s = parse_schedule(sid, body, where.file, where, problems)
        if s is not None:
            schedules[sid] = s

    partials: dict[str, _Partial] = {}
    for gid, (where, body) in raw.groups.items():
        p = _parse_group(gid, where, body, raw.schedules, catalog, problems)
        if p is not None:
            partials[gid] = p
    groups = _resolve(partials, catalog, problems)

    rules: list[ClientRule] = []
    for gid, p in partials.items():
        if p.clients and groups.get(gid) is not None and groups[gid].abstract:
            problems.add("policy.abstract_clients", p.body, "clients",
                         path=f"groups.{gid}.clients")
        rules.extend(p.clients)
    for first, dup in ClientMap.conflicts(rules):
        problems.add("policy.client_twice", file=dup.file, line=dup.line,
                     path=f"groups.{dup.group}.clients", value=dup.text, group=first.group,
                     place=f"{first.file}:{first.line}")

    if "default_group" in raw.settings:
        doc, dg = raw.settings["default_group"]
        if not isinstance(dg, str) or dg not in raw.groups:
            problems.add("policy.default_group_unknown", doc, "default_group", value=dg)
        elif dg in groups and groups[dg].abstract:
            problems.add("policy.default_group_abstract", doc, "default_group", value=dg)
        default = dg if isinstance(dg, str) else BUILTIN_DEFAULT
    else:
        default = BUILTIN_DEFAULT
        if BUILTIN_DEFAULT not in raw.groups:
            groups[BUILTIN_DEFAULT] = builtin_unknown_group(catalog)

    education: list[DomainEntry] = []
    for lst, i, item in raw.education:
        if not isinstance(item, str):
            problems.add("shape.domain", lst, i, path="education", got_type=type_code(item))
            continue
        try:
            domain, exact = parse_entry(item)
        except ValueError as exc:
            problems.add_error(exc, lst, i, path="education")
            continue
        education.append(DomainEntry(domain, exact,
                                     RuleSource("policy", lst.file, line=lst.line_of(i))))

    protected = _protected(raw, path if path.is_dir() else path.parent, problems)
    alerts = NO_ALERTS
    if "alerts" in raw.settings:
        alerts = parse_alert_rules(*raw.settings["alerts"], groups, catalog, problems)
    problems.raise_if_any()
    return Policy(
        groups=MappingProxyType(groups), schedules=MappingProxyType(schedules),
        clients=ClientMap(rules), default_group=default,
        education=DomainTable(education), protected=DomainTable(protected),
        files=tuple(str(f) for f in files), alerts=alerts,
    )
