"""The HTTP side's questions to the one engine: decide, which group, intercept or not.

Always asks the engine the caller provides *now*, so a SIGHUP reload that swaps the
engine applies to the next connection without restarting the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from filterd.policy.decision import Action, Decision, Query, Reason, RuleSource

# Sites that break under interception (banking, certificate pinning, OS updates):
# never decrypted, even for a group that intercepts. SNI filtering still applies.
DEFAULT_NO_INTERCEPT: tuple[str, ...] = (
    # Vietnamese banks and wallets
    "vietcombank.com.vn",
    "techcombank.com.vn",
    "bidv.com.vn",
    "vietinbank.vn",
    "agribank.com.vn",
    "mbbank.com.vn",
    "vpbank.com.vn",
    "tpb.vn",
    "acb.com.vn",
    "sacombank.com.vn",
    "momo.vn",
    "zalopay.vn",
    "vnpay.vn",
    "napas.com.vn",
    # pinned apps and platform services
    "apple.com",
    "icloud.com",
    "mzstatic.com",
    "itunes.apple.com",
    "push.apple.com",
    "windowsupdate.com",
    "update.microsoft.com",
    "login.microsoftonline.com",
    "whatsapp.net",
    "whatsapp.com",
    "signal.org",
    "zalo.me",
    "zaloapp.com",
    "zadn.vn",
    "android.clients.google.com",
    "play.googleapis.com",
    "accounts.google.com",
    "dropbox.com",
    "1password.com",
    "bitwarden.com",
)

Engine = Any  # filterd.policy.engine.Engine (decide, group_for, index)
# A URL rule may only add a block to what the name-level decision allowed by default;
# it never overrides an override, the education allowlist or the group's allow list.
URL_CHECKED = frozenset({Reason.DEFAULT, Reason.SAFE_SEARCH, Reason.YOUTUBE})
EngineProvider = Callable[[], Engine]


def now_utc() -> datetime:
    return datetime.now(UTC)


def domain_matches(name: str, domains: Iterable[str]) -> bool:
    return any(name == d or name.endswith("." + d) for d in domains)


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Decider:
    def __init__(
        self,
        engine_provider: EngineProvider,
        *,
        intercept_groups: Iterable[str] = (),
        staff_groups: Iterable[str] = ("giao_vien", "staff"),
        no_intercept: Iterable[str] = DEFAULT_NO_INTERCEPT,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.engine_provider = engine_provider
        self.intercept_groups = frozenset(intercept_groups)
        self.staff_groups = frozenset(staff_groups)
        self.no_intercept = tuple(no_intercept)
        self.clock = clock

    def query(self, name: str, client_ip: str, path: str, url: str | None = None) -> Query:
        return Query(name=name, client_ip=client_ip, at=self.clock(), path=path, url=url)

    def decide(self, query: Query) -> Decision:
        engine = self.engine_provider()
        decision = engine.decide(query)
        if query.url and not decision.blocked and decision.reason in URL_CHECKED:
            return self._url_decision(engine, query, decision) or decision
        return decision

    @staticmethod
    def _url_decision(engine: Engine, query: Query, name_decision: Decision) -> Decision | None:
        """UT1 `urls`/`expressions` hits, blocked when the group always blocks their category.

        The engine decides on names; URL entries come from the same list index, and a
        category counts as blocked here only when the group blocks it at all times.
        """
        index = getattr(engine, "index", None)
        url_match = getattr(index, "url_match", None)
        if url_match is None:
            return None
        hit = url_match(query.url)
        if hit is None:
            return None
        group = engine.group_for(query.client_ip, query.client_mac)
        always = getattr(group, "block_always", {}) or {}
        blocked = sorted(c for c in hit.categories if c in always)
        if not blocked:
            return None
        source = RuleSource(
            "list",
            hit.sources[0] if hit.sources else "urls",
            version=getattr(index, "version", None),
        )
        return Decision(
            Action.BLOCK,
            Reason.CATEGORY,
            name=name_decision.name,
            group=name_decision.group,
            at=name_decision.at,
            rule=hit.domain,
            source=source,
            category=blocked[0],
            group_label=name_decision.group_label,
            categories=tuple(sorted(hit.categories)),
        )

    def group_of(self, client_ip: str) -> Any:
        return self.engine_provider().group_for(client_ip)

    def intercepts(self, client_ip: str, name: str | None) -> bool:
        """Decrypt this connection? Only for opted-in groups, never for no-intercept sites."""
        group = self.group_of(client_ip)
        wanted = group.id in self.intercept_groups or bool(getattr(group, "intercept", False))
        if not wanted:
            return False
        return not (name and domain_matches(name, self.no_intercept))

    def is_staff(self, group_id: str) -> bool:
        return group_id in self.staff_groups
