"""The engine: `Engine.decide(Query) -> Decision`, pure and fast.

Precedence (the one table is docs/precedence.md; keep both in step):

  1 protected list (policy file, authority feed, list category `illegal`)  -> BLOCK
  2 bypass names (DoH canary, iCloud Private Relay, resolver.arpa)         -> BLOCK
  3 a teacher's temporary override for the client's group                  -> ALLOW
  4 education allowlist                                                    -> ALLOW
  5 group allow                                                            -> ALLOW
  6 group deny                                                             -> BLOCK
 6b the office's district/province allow and deny feeds                     -> ALLOW/BLOCK
  7 category blocked always / inside an active schedule                    -> BLOCK
    (the name's list entries first, then, on HTTP paths, the URL's entries)
  8 safe search / YouTube restriction                                      -> REWRITE/ENFORCE
  9 nothing matched                                                        -> ALLOW

Everything that can be computed before a query is computed at build time: per
group and per combination of active schedules, the dict of blocked categories
with the rule that blocks each; the schedule state is recomputed once per
wall-clock minute; the client -> group lookup is memoised per (ip, mac).
decide() does no I/O: the list index lookup is an in-memory (mmap) operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Protocol

from filterd.policy.catalog import Catalog
from filterd.policy.clients import ClientMap, NeighbourTable
from filterd.policy.decision import Action, Decision, Query, Reason, RuleSource
from filterd.policy.domains import DomainTable, LayeredTable
from filterd.policy.feeds import NO_FEEDS, FeedTables
from filterd.policy.loader import Group, Policy
from filterd.policy.names import InvalidName, normalize_name, parents
from filterd.policy.overrides import EMPTY, OverrideSet
from filterd.policy.schedules import Schedule

PROTECTED_CATEGORY = "illegal"
# Precedence ranks of the domain-table layers (docs/precedence.md rows).
_PROTECTED, _BYPASS, _EDUCATION, _ALLOW, _DENY, _SAFE_SEARCH, _YOUTUBE, _NONE = (
    1, 2, 4, 5, 6, 8, 9, 99)
_REWRITE_PATHS = frozenset(("dns", "check"))
_CLIENT_CACHE_MAX = 8192


class ListHitLike(Protocol):
    domain: str
    categories: frozenset[str]
    sources: tuple[str, ...]


class CategoryIndex(Protocol):
    """What the engine needs of `filterd.lists.index.ListIndex` (see CONTRACTS.md)."""

    version: str

    def lookup(self, name: str) -> tuple[ListHitLike, ...]: ...


class EmptyIndex:
    """No category lists at all (used only when the caller passes none)."""

    version = "none"
    sources: Mapping[str, object] = MappingProxyType({})

    def lookup(self, name: str) -> tuple[ListHitLike, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class _CatBlock:
    """Why a category is blocked for a group right now."""

    rank: int
    reason: Reason
    policy_source: RuleSource
    schedule: Schedule | None


class _GroupRuntime:
    """A group compiled for the hot path."""

    __slots__ = ("_at", "always", "block_mode", "blocks_by_mask", "group", "group_id",
                 "label_en", "label_vi", "lists", "sched_cats", "schedules", "ss_level",
                 "yt_level")

    def __init__(self, group: Group, schedules: Mapping[str, Schedule], catalog: Catalog):
        self.group = group
        self.group_id = group.id
        self.label_vi = group.label_vi
        self.label_en = group.label_en
        self.block_mode = group.block_mode
        self.ss_level = group.safe_search
        self.yt_level = group.youtube
        self.schedules = tuple(schedules[s] for s in sorted(group.block_during))
        # per schedule: the categories whose verdict it changes (always-blocked ones never do)
        self.sched_cats = tuple(frozenset(group.block_during[s.id]) - set(group.block_always)
                                for s in self.schedules)
        blocks = []
        for mask in range(1 << len(self.schedules)):
            cats: dict[str, _CatBlock] = {}
            for bit, sched in enumerate(self.schedules):
                if mask & (1 << bit):
                    for cat, src in group.block_during[sched.id].items():
                        cats.setdefault(cat, _CatBlock(catalog.rank(cat),
                                                       Reason.SCHEDULED_CATEGORY, src, sched))
            for cat, src in group.block_always.items():  # always wins over a schedule
                cats[cat] = _CatBlock(catalog.rank(cat), Reason.CATEGORY, src, None)
            blocks.append(cats)
        self.blocks_by_mask = tuple(blocks)
        self.always = blocks[0]
        self.lists = (LayeredTable([(_ALLOW, group.allow), (_DENY, group.deny)])
                      if group.allow or group.deny else None)
        self._at: tuple[int, dict[str, _CatBlock]] = (-1, self.always)

    def blocks_at(self, minute_of_week: int) -> dict[str, _CatBlock]:
        """The blocked categories at that minute of the week (the last minute asked for
        is kept: every query of a minute asks for the same one)."""
        at = self._at
        if at[0] == minute_of_week:
            return at[1]
        mask = 0
        for bit, sched in enumerate(self.schedules):
            if sched.minutes[minute_of_week]:
                mask |= 1 << bit
        blocks = self.blocks_by_mask[mask]
        self._at = (minute_of_week, blocks)
        return blocks


class Engine:
    """An immutable, validated policy snapshot that answers `decide(query)`."""

    def __init__(self, policy: Policy, catalog: Catalog, *, timezone: tzinfo,
                 index: CategoryIndex | None = None, overrides: OverrideSet = EMPTY,
                 neighbours: NeighbourTable | None = None,
                 bypass: DomainTable, safe_search: DomainTable, youtube: DomainTable,
                 feeds: FeedTables = NO_FEEDS) -> None:
        self.policy = policy
        self.feeds = feeds
        self.catalog = catalog
        self.timezone = timezone
        self.index: CategoryIndex = index if index is not None else EmptyIndex()
        self.overrides = overrides
        self._has_overrides = bool(overrides)
        self._has_feed_lists = bool(feeds.allow or feeds.deny or feeds.reported)
        self.neighbours = neighbours
        self.groups: Mapping[str, Group] = policy.groups
        self.schedules = policy.schedules
        # The office's protected and education feeds join the school's own rows 1 and 4.
        self._global = LayeredTable([(_PROTECTED, policy.protected),
                                     (_PROTECTED, feeds.protected), (_BYPASS, bypass),
                                     (_EDUCATION, policy.education),
                                     (_EDUCATION, feeds.education),
                                     (_SAFE_SEARCH, safe_search), (_YOUTUBE, youtube)])
        self._sorted_cats: dict[frozenset[str], tuple[str, ...]] = {}
        self._url_match = getattr(self.index, "url_match", None)
        self._ips = getattr(self.index, "ips", None) or None
        self._clients: ClientMap = policy.clients
        self._runtime = {gid: _GroupRuntime(g, policy.schedules, catalog)
                         for gid, g in policy.groups.items()}
        self._default = self._runtime[policy.default_group]
        self._client_cache: dict[tuple[str, str | None], _GroupRuntime] = {}
        # (start, end, minute of week) of the minute last asked about
        self._minute: tuple[datetime | None, datetime | None, int] = (None, None, 0)
        self._change_in = {sid: s.change_in() for sid, s in policy.schedules.items()}
        self._list_sources = self._source_versions()

    def _source_versions(self) -> dict[str, tuple[str | None, RuleSource]]:
        """source name -> (its category, RuleSource with its version), computed once."""
        out = {}
        for name, info in getattr(self.index, "sources", {}).items():
            version = getattr(info, "version", None) or getattr(self.index, "version", None)
            out[name] = (getattr(info, "category", None), RuleSource("list", name,
                                                                     version=version))
        return out

    # -- clients --------------------------------------------------------------------------------

    def _runtime_for(self, ip: str, mac: str | None) -> _GroupRuntime:
        key = (ip, mac)
        rt = self._client_cache.get(key)
        if rt is not None:
            return rt
        ask_neighbours = (mac is None and self.neighbours is not None
                          and self._clients.has_mac_rules)
        if ask_neighbours:
            mac = self.neighbours.mac_for(ip)
        rule = self._clients.lookup(ip, mac)
        rt = self._runtime[rule.group] if rule is not None else self._default
        if not ask_neighbours:  # the MAC behind an IP may change: those are not memoised
            if len(self._client_cache) >= _CLIENT_CACHE_MAX:
                self._client_cache.clear()
            self._client_cache[key] = rt
        return rt

    def group_for(self, client_ip: str, client_mac: str | None = None) -> Group:
        return self._runtime_for(client_ip, client_mac).group

    def client_group(self, client_ip: str) -> tuple[str, bool]:
        """The id of the group `client_ip` is in (no MAC given, as on DNS), and whether
        that holds for this engine's life: False when it may come from the MAC address
        seen behind the IP (the neighbour table), which can change at any moment.

        For the DNS verdict table: devices of one group share the engine's verdicts,
        since a decision depends on the group, the name and the time, not the device.
        """
        stable = not (self.neighbours is not None and self._clients.has_mac_rules)
        return self._runtime_for(client_ip, None).group_id, stable

    # -- time -----------------------------------------------------------------------------------

    def _minute_of_week(self, at: datetime) -> int:
        # Most queries fall in the minute of the one before, with the same fixed-offset
        # tzinfo (the DNS path's UTC): two comparisons of the datetime's own fields, not
        # at.timestamp() (which builds a timedelta or two) per query.
        cached = self._minute
        start = cached[0]
        if start is not None and at.tzinfo is start.tzinfo and start <= at < cached[1]:
            return cached[2]
        minute = int(at.timestamp()) // 60
        local = at.astimezone(self.timezone)
        mow = local.weekday() * 1440 + local.hour * 60 + local.minute
        tz = at.tzinfo
        if isinstance(tz, timezone):   # a fixed offset: fields compare as instants
            start = datetime.fromtimestamp(minute * 60, tz)
            self._minute = (start, start + timedelta(seconds=60), mow)
        else:
            self._minute = (None, None, mow)
        return mow

    def _valid_until(self, rt: _GroupRuntime, hits: tuple[ListHitLike, ...], at: datetime
                     ) -> datetime | None:
        """The next moment a schedule of one of the name's categories starts or ends for
        the group (the verdict may change then), or None."""
        soonest = None
        for bit, sched in enumerate(rt.schedules):
            cats = rt.sched_cats[bit]
            if not cats or not any(not cats.isdisjoint(h.categories) for h in hits):
                continue
            table = self._change_in.get(sched.id)
            if table is not None:
                n = table[self._minute_of_week(at)]
                if soonest is None or n < soonest:
                    soonest = n
        if soonest is None:
            return None
        into = at.second + at.microsecond / 1e6
        return at + timedelta(seconds=soonest * 60 - into)

    # -- the decision ---------------------------------------------------------------------------

    def _list_source(self, hit: ListHitLike, category: str) -> RuleSource:
        """The list that put `hit` in `category` (a name may be in several lists)."""
        known = self._list_sources
        for name in hit.sources:
            entry = known.get(name)
            if entry is not None and entry[0] == category:
                return entry[1]
        name = hit.sources[0] if hit.sources else "lists"
        entry = known.get(name)
        if entry is not None:
            return entry[1]
        return RuleSource("list", name, version=getattr(self.index, "version", None))

    def _categories(self, hits: tuple[ListHitLike, ...]) -> tuple[str, ...]:
        """Every category of every hit, most serious first (memoised per category set)."""
        if not hits:
            return ()
        if len(hits) == 1:
            cats = hits[0].categories
        else:
            cats = frozenset().union(*(h.categories for h in hits))
        out = self._sorted_cats.get(cats)
        if out is None:
            out = tuple(sorted(cats, key=lambda c: (self.catalog.rank(c), c)))
            if len(self._sorted_cats) < 4096:
                self._sorted_cats[cats] = out
        return out

    def decide(self, query: Query) -> Decision:
        rt = self._client_cache.get((query.client_ip, query.client_mac))
        if rt is None:
            rt = self._runtime_for(query.client_ip, query.client_mac)
        return self._decide(query, rt)

    def decide_for_group(self, query: Query, group_id: str) -> Decision:
        """Decide as a member of `group_id`, whatever `query.client_ip` is.

        For the teacher's "why blocked?" page and the admin page, which ask about a
        group (a class) rather than a device. Raises KeyError for an unknown group.
        """
        return self._decide(query, self._runtime[group_id])

    def _decide(self, query: Query, rt: _GroupRuntime) -> Decision:
        name = query.name
        if not name.isascii():
            try:
                name = normalize_name(name)
            except InvalidName:
                name = name.lower()
        elif name[-1:] == "." or not name.islower():
            name = name.rstrip(".").lower()
        at = query.at
        chain = parents(name)
        hits = self.index.lookup(name)
        if not hits and self._ips is not None and name[-1:].isdigit() and query.path != "dns":
            ip_hit = self._ips.get(name)   # the proxy sees bare IPv4 hosts; lists keep them apart
            if ip_hit is not None:
                hits = (ip_hit,)
        glob = self._global.match(chain)
        layer = glob[0] if glob is not None else _NONE

        # 1 protected: nothing below can unblock it
        if layer == _PROTECTED:
            e = glob[1]
            return Decision(Action.BLOCK, Reason.PROTECTED, name, rt.group_id, at, e.rule,
                            e.source, PROTECTED_CATEGORY, rt.label_vi, rt.block_mode, None,
                            self._categories(hits), rt.label_en)
        for hit in hits:
            if PROTECTED_CATEGORY in hit.categories:
                return Decision(Action.BLOCK, Reason.PROTECTED, name, rt.group_id, at,
                                hit.domain, self._list_source(hit, PROTECTED_CATEGORY),
                                PROTECTED_CATEGORY, rt.label_vi, rt.block_mode, None,
                                self._categories(hits), rt.label_en)
        # 2 bypass names
        if layer == _BYPASS:
            e = glob[1]
            return Decision(Action.BLOCK, Reason.BYPASS, name, rt.group_id, at, e.rule,
                            e.source, None, rt.label_vi, e.value, None, self._categories(hits),
                            rt.label_en)
        # 3 teacher override
        if self._has_overrides:
            o = self.overrides.match(rt.group_id, chain, at)
            if o is not None:
                return Decision(Action.ALLOW, Reason.OVERRIDE, name, rt.group_id, at, o.domain,
                                RuleSource("override", o.id), None, rt.label_vi, None, None,
                                self._categories(hits), rt.label_en,
                                valid_until=o.expires_at)
        # 4 education allowlist
        if layer == _EDUCATION:
            e = glob[1]
            return Decision(Action.ALLOW, Reason.EDUCATION, name, rt.group_id, at, e.rule,
                            e.source, None, rt.label_vi, None, None, self._categories(hits),
                            rt.label_en)
        # 5 group allow, 6 group deny
        if rt.lists is not None:
            own = rt.lists.match(chain)
            if own is not None:
                e = own[1]
                if own[0] == _ALLOW:
                    return Decision(Action.ALLOW, Reason.GROUP_ALLOW, name, rt.group_id, at,
                                    e.rule, e.source, None, rt.label_vi, None, None,
                                    self._categories(hits), rt.label_en)
                return Decision(Action.BLOCK, Reason.GROUP_DENY, name, rt.group_id, at, e.rule,
                                e.source, None, rt.label_vi, rt.block_mode, None,
                                self._categories(hits), rt.label_en)
        # 6b the office's allow/deny additions (after the school's own lists)
        if self._has_feed_lists:
            add = self.feeds.match_additions(chain)
            if add is not None:
                allowed, e = add
                if allowed:
                    return Decision(Action.ALLOW, Reason.FEED_ALLOW, name, rt.group_id, at,
                                    e.rule, e.source, None, rt.label_vi, None, None,
                                    self._categories(hits), rt.label_en)
                reason = Reason.REPORTED if e.source.kind == "report" else Reason.FEED_DENY
                return Decision(Action.BLOCK, reason, name, rt.group_id, at, e.rule,
                                e.source, None, rt.label_vi, rt.block_mode, None,
                                self._categories(hits), rt.label_en)
        # 7 categories: the most specific list entry first; within it, the most serious
        if hits:
            blocks = rt.blocks_at(self._minute_of_week(at)) if rt.schedules else rt.always
            if blocks:
                for hit in hits:
                    best: _CatBlock | None = None
                    best_cat = ""
                    for cat in hit.categories:
                        b = blocks.get(cat)
                        if b is not None and (best is None or b.rank < best.rank):
                            best, best_cat = b, cat
                    if best is not None:
                        s = best.schedule
                        return Decision(
                            Action.BLOCK, best.reason, name, rt.group_id, at, hit.domain,
                            self._list_source(hit, best_cat), best_cat, rt.label_vi,
                            rt.block_mode, None, self._categories(hits), rt.label_en,
                            s.id if s else None, s.label_vi if s else None,
                            s.label_en if s else None,
                            self._valid_until(rt, hits, at) if s else None)
        # 7b the URL (HTTP paths only): UT1 `urls` prefixes and `expressions`, same categories
        if query.url is not None and self._url_match is not None:
            hit = self._url_match(query.url)
            if hit is not None:
                blocks = rt.blocks_at(self._minute_of_week(at)) if rt.schedules else rt.always
                best, best_cat = None, ""
                for cat in hit.categories:
                    b = blocks.get(cat)
                    if b is not None and (best is None or b.rank < best.rank):
                        best, best_cat = b, cat
                if best is not None:
                    s = best.schedule
                    return Decision(
                        Action.BLOCK, best.reason, name, rt.group_id, at, hit.domain,
                        self._list_source(hit, best_cat), best_cat, rt.label_vi,
                        rt.block_mode, None, self._categories((hit, *hits)), rt.label_en,
                        s.id if s else None, s.label_vi if s else None,
                        s.label_en if s else None)
        # 8 safe search and YouTube restriction
        if layer == _SAFE_SEARCH and rt.ss_level != "off":
            return self._rewrite(query, name, rt, glob[1], Reason.SAFE_SEARCH, rt.ss_level, hits)
        if layer == _YOUTUBE and rt.yt_level != "off":
            return self._rewrite(query, name, rt, glob[1], Reason.YOUTUBE, rt.yt_level, hits)
        # 9 nothing matched (a schedule of one of its categories may start blocking it)
        if not hits:
            return Decision(Action.ALLOW, Reason.DEFAULT, name, rt.group_id, at, "",
                            _DEFAULT_SOURCE, None, rt.label_vi, None, None, (), rt.label_en)
        return Decision(Action.ALLOW, Reason.DEFAULT, name, rt.group_id, at, "", _DEFAULT_SOURCE,
                        None, rt.label_vi, None, None, self._categories(hits), rt.label_en,
                        valid_until=self._valid_until(rt, hits, at) if rt.schedules else None)

    def _rewrite(self, query: Query, name: str, rt: _GroupRuntime, e, reason: Reason,
                 level: str, hits) -> Decision:
        target = e.value.get(level)
        action = Action.REWRITE if target and query.path in _REWRITE_PATHS else Action.ENFORCE
        return Decision(action, reason, name, rt.group_id, query.at, f"{reason.value}: {level}",
                        e.source, None, rt.label_vi, None, target, self._categories(hits),
                        rt.label_en, valid_until=self._valid_until(rt, hits, query.at)
                        if rt.schedules and hits else None)


_DEFAULT_SOURCE = RuleSource("builtin", "default")
