"""Query and Decision: the one question every path asks and the one answer it gets.

The DNS answer, the HTTP block page, `filterd check`, the teacher's "why blocked"
page and the event log all render the same Decision, so a teacher never sees a
different reason than the student got.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from filterd.errors import FilterdError


class Action(StrEnum):
    ALLOW = "allow"        # forward / pass through
    BLOCK = "block"        # refuse: block address, NXDOMAIN, null, block page
    REWRITE = "rewrite"    # answer with a CNAME to a safe variant (safe search, YouTube)
    ENFORCE = "enforce"    # allow, but enforce in HTTP (safe=active, YouTube-Restrict)


class Reason(StrEnum):
    """Why; ordered as the precedence table in docs/precedence.md."""

    PROTECTED = "protected"            # global illegal-content list: nothing unblocks it
    BYPASS = "bypass"                  # resolver-bypass names (canary domains, iCloud relay)
    OVERRIDE = "override"              # a teacher's temporary override
    EDUCATION = "education"            # the national education allowlist
    GROUP_ALLOW = "group_allow"        # the group's allow entries
    GROUP_DENY = "group_deny"          # the group's deny entries
    FEED_ALLOW = "feed_allow"          # the office's district/province allow additions
    REPORTED = "reported"              # reported as harmful; blocked by the school's IT staff
    FEED_DENY = "feed_deny"            # the office's district/province deny additions
    CATEGORY = "category"              # an always-blocked category
    SCHEDULED_CATEGORY = "scheduled_category"  # a category blocked inside a schedule
    SAFE_SEARCH = "safe_search"        # search engine forced to its safe variant
    YOUTUBE = "youtube"                # YouTube restricted mode
    DEFAULT = "default"                # nothing matched: allowed


class BlockMode(StrEnum):
    """How a blocked DNS answer looks for the group."""

    ADDRESS = "address"    # the appliance's own address, so HTTP lands on the block page
    NXDOMAIN = "nxdomain"
    NULL = "null"          # 0.0.0.0 / ::
    NODATA = "nodata"      # NOERROR with no answer (resolver.arpa)


class QueryError(FilterdError, ValueError):
    """A Query was built with an invalid value."""


PATHS = ("dns", "http", "sni", "intercept", "check", "bypass")


@functools.lru_cache(maxsize=65536)
def _valid_ip(text: str) -> bool:
    """Parsing an address costs more than deciding a cached DNS query; a school has few."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Query:
    """A request to decide: which client asks for which name, when, along which path."""

    name: str
    client_ip: str
    at: datetime
    client_mac: str | None = None
    qtype: str = "A"
    path: str = "dns"
    url: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise QueryError("Query.at must be timezone-aware")
        if not _valid_ip(self.client_ip):
            raise QueryError(f"bad client address {self.client_ip!r}")
        if self.path not in PATHS:
            raise QueryError(f"unknown path {self.path!r}")
        if not self.name:
            raise QueryError("empty name")


@dataclass(frozen=True, slots=True)
class RuleSource:
    """Where the matching rule lives: a list (name and version) or a policy file and line."""

    kind: str              # "list" | "policy" | "builtin" | "override"
    name: str              # list name, policy file path, builtin table name, override id
    version: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list {self.name}" + (f" (version {self.version})" if self.version else "")
        if self.kind == "policy":
            return self.name + (f":{self.line}" if self.line else "")
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: Reason
    name: str
    group: str
    at: datetime
    rule: str                       # the matched entry, e.g. "example.com" or "categories: adult"
    source: RuleSource
    category: str | None = None
    group_label: str | None = None  # human name of the group (Vietnamese)
    block_mode: BlockMode | None = None   # only for BLOCK
    rewrite_target: str | None = None     # only for REWRITE (CNAME target)
    categories: tuple[str, ...] = field(default_factory=tuple)  # every category the name is in
    group_label_en: str | None = None     # human name of the group (English)
    schedule: str | None = None           # for SCHEDULED_CATEGORY: the schedule id
    schedule_label: str | None = None     # ... and its human name (Vietnamese)
    schedule_label_en: str | None = None  # ... (English)
    # When a time rule may change this verdict (an override ends, a schedule of one of the
    # name's categories starts or ends for the group): answers must not outlive it (DNS
    # TTLs are capped to it). None: no time rule applies.
    valid_until: datetime | None = None

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["action"] = self.action.value
        d["reason"] = self.reason.value
        d["at"] = self.at.isoformat()
        d["valid_until"] = self.valid_until.isoformat() if self.valid_until else None
        d["source"] = {k: v for k, v in asdict(self.source).items() if v is not None}
        d["source_text"] = str(self.source)
        d["block_mode"] = self.block_mode.value if self.block_mode else None
        d["categories"] = list(self.categories)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    def text(self, lang: str = "vi", *, for_staff: bool = True) -> str:
        """Plain-words explanation with the shipped catalog; pages and the CLI use
        `filterd.words.Words.for_engine(engine)`, which has the configured one."""
        from filterd.words.explain import explain

        return explain(self, lang=lang, for_staff=for_staff)


def _fast_init(cls: type) -> None:
    """Give a frozen, slotted dataclass an `__init__` that sets its slots directly.

    The generated one calls `object.__setattr__(self, name, value)` per field (frozen
    classes cannot assign), about 0.25 µs each: 17 fields made a Decision cost more than
    the list lookup that led to it, on every query that reaches the engine. This one
    calls each slot's own descriptor (the same store, without the attribute lookup and
    the generic setattr), about a third of the cost. Same signature, defaults, default
    factories and `__post_init__`; the class stays frozen (its `__setattr__` still
    refuses), and eq, hash and repr are the dataclass's.
    """
    ns: dict[str, object] = {"_MISSING": MISSING}
    params, body = [], []
    for f in fields(cls):
        ns[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is not MISSING:
            ns[f"_dflt_{f.name}"] = f.default
            params.append(f"{f.name}=_dflt_{f.name}")
        elif f.default_factory is not MISSING:
            ns[f"_fact_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _fact_{f.name}()")
        else:
            params.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n", ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"   # type: ignore[attr-defined]
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init   # type: ignore[misc]


_fast_init(Query)
_fast_init(RuleSource)
_fast_init(Decision)
