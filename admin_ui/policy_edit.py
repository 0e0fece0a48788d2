"""The groups editor's bridge to policies/*.yaml: read a group into a form, write a form back.

The form shows what the group really blocks (inheritance applied, as the engine
resolved it); writing turns that back into the group's own `block`, `unblock`,
`allow`, `deny`, `clients` and levels, leaving its parent alone. Files are edited
by splicing only the edited keys' lines into the file (admin_ui/yaml_splice.py): the
rest of the file, comments included, stays byte for byte.
The result is only written after the daemon's loader accepted it (Backend.write_policies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from admin_ui.backend import Backend
from admin_ui.errors import N_, AdminError
from admin_ui.yaml_splice import Splicer, plain

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
    body = doc["groups"][gid] or {}
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

    old_block = plain(body.get("block")) if isinstance(body.get("block"), dict) else {}
    block: dict[str, Any] = {}
    if own_always:
        block["always"] = _as_before(old_block.get("always"), _ordered(own_always, order))
    if own_during:
        old_during = old_block.get("during") if isinstance(old_block.get("during"), dict) else {}
        block["during"] = {s: _as_before(old_during.get(s), _ordered(c, order))
                           for s, c in own_during.items()}
    edit = Splicer(before, gid)
    edit.set("label_vi", form.label_vi)
    edit.set("label_en", form.label_en)
    edit.set("block", old_block if block == old_block else block)
    edit.set("unblock", _as_before(plain(body.get("unblock")), _ordered(unblock, order)))
    edit.set("allow", list(form.allow))
    edit.set("deny", list(form.deny))
    edit.set("clients", list(form.clients))
    edit.set("safe_search", form.safe_search)
    edit.set("youtube", form.youtube)
    edit.set("block_mode", form.block_mode)
    return path.name, before, edit.result()


def _as_before(old: Any, new: list[str]) -> list[str]:
    """`new`, or the old list when it holds the same categories (its order and lines kept)."""
    if isinstance(old, list) and sorted(map(str, old)) == sorted(new):
        return old
    return new


def add_allow(be: Backend, gid: str, domain: str) -> tuple[str, str, str]:
    """(file, before, after) with `domain` added to the group's own allow entries."""
    path, before, doc = find_group(be, gid)
    body = doc["groups"][gid] or {}
    allow = [str(a) for a in body.get("allow") or []] if isinstance(body.get("allow"), list) \
        else []
    if domain not in allow:
        allow.append(domain)
    edit = Splicer(before, gid)
    edit.set("allow", allow)
    return path.name, before, edit.result()
