"""The groups editor's bridge to policies/*.yaml: read a group into a form, write a form back.

The form shows what the group really blocks (inheritance applied, as the engine
resolved it); writing turns that back into the group's own `block`, `unblock`,
`allow`, `deny`, `clients` and levels, leaving its parent alone. Files are edited
round-trip (ruamel.yaml), so comments and order in the shipped policy survive.
The result is only written after the daemon's loader accepted it (Backend.write_policies).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from admin_ui.backend import Backend
from admin_ui.errors import N_, AdminError

LEVELS = ("off", "moderate", "strict")
BLOCK_MODES = ("address", "nxdomain", "null")
INHERIT = ""  # form value meaning "as the parent group"


@dataclass(frozen=True)
class GroupForm:
    gid: str
    file: str
    label_vi: str = ""
    label_en: str = ""
    extends: str = ""
    always: frozenset[str] = frozenset()                      # effective always-blocked
    during: Mapping[str, frozenset[str]] = field(default_factory=dict)  # schedule -> effective
    schedules: tuple[str, ...] = ()
    schedule_labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # id -> (vi, en)
    allow: tuple[str, ...] = ()     # the group's own entries
    deny: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    safe_search: str = INHERIT
    youtube: str = INHERIT
    block_mode: str = INHERIT
    parent_always: frozenset[str] = frozenset()
    parent_during: Mapping[str, frozenset[str]] = field(default_factory=dict)


def yaml_rt() -> YAML:
    y = YAML()  # round-trip: keeps comments, order and quoting
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 100
    return y


def find_group(be: Backend, gid: str) -> tuple[Path, str, Any]:
    """The policy file that defines group `gid`, its text and its parsed (round-trip) document."""
    for path in be.policy_files():
        text = path.read_text(encoding="utf-8")
        doc = yaml_rt().load(text)
        groups = doc.get("groups") if isinstance(doc, dict) else None
        if isinstance(groups, dict) and gid in groups:
            return path, text, doc
    raise AdminError(N_("No policy file defines group %(group)s."), group=gid)


def _effective(be: Backend, gid: str) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    grp = be.engine().groups.get(gid)
    if grp is None:
        return frozenset(), {}
    always = frozenset(getattr(grp, "block_always", {}) or {})
    during = {s: frozenset(c) for s, c in (getattr(grp, "block_during", {}) or {}).items()}
    return always, during


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value)


def group_form(be: Backend, gid: str) -> GroupForm:
    path, _text, doc = find_group(be, gid)
    body = doc["groups"][gid] or {}
    always, during = _effective(be, gid)
    parent = str(body.get("extends") or "")
    p_always, p_during = _effective(be, parent) if parent else (frozenset(), {})
    all_schedules = getattr(be.engine(), "schedules", {}) or {}
    schedules = tuple(all_schedules)
    labels = {sid: (str(getattr(sch, "label_vi", "") or sid),
                    str(getattr(sch, "label_en", "") or sid))
              for sid, sch in all_schedules.items()}
    return GroupForm(
        gid=gid, file=path.name,
        label_vi=str(body.get("label_vi") or ""), label_en=str(body.get("label_en") or ""),
        extends=parent, always=always,
        during={s: during.get(s, frozenset()) for s in schedules},
        schedules=schedules, schedule_labels=labels,
        allow=_strings(body.get("allow")), deny=_strings(body.get("deny")),
        clients=_strings(body.get("clients")),
        safe_search=str(body.get("safe_search") or INHERIT),
        youtube=str(body.get("youtube") or INHERIT),
        block_mode=str(body.get("block_mode") or INHERIT),
        parent_always=p_always, parent_during=p_during)


def _lines(text: str) -> tuple[str, ...]:
    out = []
    for line in (text or "").replace("\r", "").split("\n"):
        line = line.split("#", 1)[0].strip()
        if line and line not in out:
            out.append(line)
    return tuple(out)


def form_from_request(data: Any, base: GroupForm) -> GroupForm:
    """The submitted form over `base` (values the form cannot change stay as they were)."""
    return replace(
        base,
        label_vi=(data.get("label_vi") or "").strip(),
        label_en=(data.get("label_en") or "").strip(),
        always=frozenset(data.getlist("always")),
        during={s: frozenset(data.getlist(f"during.{s}")) for s in base.schedules},
        allow=_lines(data.get("allow", "")), deny=_lines(data.get("deny", "")),
        clients=_lines(data.get("clients", "")),
        safe_search=data.get("safe_search", INHERIT), youtube=data.get("youtube", INHERIT),
        block_mode=data.get("block_mode", INHERIT))


def _set(body: CommentedMap, key: str, value: Any) -> None:
    """Set or (for empty values) remove a key, keeping its place when it exists."""
    if value in (None, "", [], {}):
        body.pop(key, None)
    else:
        body[key] = value


def _set_list(body: CommentedMap, key: str, new: list[str], *, as_set: bool = False) -> None:
    """Like _set for lists, but an unchanged list keeps its node (its comments and style)."""
    old = body.get(key)
    if isinstance(old, list):
        same = (set(map(str, old)) == set(new)) if as_set else ([str(v) for v in old] == new)
        if same and len(old) == len(new):
            return
    _set(body, key, new)


def _ordered(cats: set[str] | frozenset[str], order: list[str]) -> list[str]:
    rank = {c: i for i, c in enumerate(order)}
    return sorted(cats, key=lambda c: (rank.get(c, len(rank)), c))


def apply_form(be: Backend, gid: str, form: GroupForm) -> tuple[str, str, str]:
    """(file name, text before, text after) with the form written into the group's own keys."""
    for key, value, allowed in (("safe_search", form.safe_search, LEVELS),
                                ("youtube", form.youtube, LEVELS),
                                ("block_mode", form.block_mode, BLOCK_MODES)):
        if value != INHERIT and value not in allowed:
            raise AdminError(N_("Bad value for %(key)s."), key=key)
    path, before, doc = find_group(be, gid)
    body = doc["groups"][gid]
    if body is None:
        body = doc["groups"][gid] = CommentedMap()
    order = list(be.categories())
    # The parent's blocks the form unticked must be unblocked; own blocks are what the
    # parent (after unblocking) does not already give.
    unblock = set(form.parent_always - form.always)
    for s, cats in form.parent_during.items():
        unblock |= set(cats - form.during.get(s, frozenset()))
    own_always = set(form.always - (form.parent_always - unblock))
    own_during = {s: set(cats - (form.parent_during.get(s, frozenset()) - unblock))
                  for s, cats in form.during.items()}
    own_during = {s: c for s, c in own_during.items() if c}

    block = body.get("block")
    if not isinstance(block, dict):
        block = CommentedMap()
    _set_list(block, "always", _ordered(own_always, order), as_set=True)
    during = block.get("during")
    if not isinstance(during, dict):
        during = CommentedMap()
    for s in list(during):
        if s not in own_during:
            during.pop(s)
    for s, cats in own_during.items():
        _set_list(during, s, _ordered(cats, order), as_set=True)
    _set(block, "during", during if during else None)
    _set(body, "block", block if block else None)
    _set_list(body, "unblock", _ordered(unblock, order), as_set=True)
    _set(body, "label_vi", form.label_vi)
    _set(body, "label_en", form.label_en)
    _set_list(body, "allow", list(form.allow))
    _set_list(body, "deny", list(form.deny))
    _set_list(body, "clients", list(form.clients))
    _set(body, "safe_search", form.safe_search)
    _set(body, "youtube", form.youtube)
    _set(body, "block_mode", form.block_mode)
    buf = io.StringIO()
    yaml_rt().dump(doc, buf)
    return path.name, before, buf.getvalue()


def add_allow(be: Backend, gid: str, domain: str) -> tuple[str, str, str]:
    """(file, before, after) with `domain` added to the group's own allow entries."""
    path, before, doc = find_group(be, gid)
    body = doc["groups"][gid]
    if body is None:
        body = doc["groups"][gid] = CommentedMap()
    allow = body.get("allow")
    if not isinstance(allow, list):
        allow = []
    if domain not in [str(a) for a in allow]:
        allow.append(domain)
    body["allow"] = allow
    buf = io.StringIO()
    yaml_rt().dump(doc, buf)
    return path.name, before, buf.getvalue()
