"""The office's feeds as the engine sees them: four domain tables, already verified.

The feeds are fetched and their signatures checked outside the policy package
(filterd/sync/feedpull.py); the daemon hands the verified names in here, so
the engine stays pure. Precedence (docs/precedence.md):

- protected feed: joins the protected list (row 1): nothing below unblocks it,
  not an override, not the school's own allow list;
- education feed: joins the education allowlist (row 4);
- allow and deny feeds: district- or province-wide additions, after the
  school's own group allow/deny (rows 5-6), so a school can still allow what
  its lessons need or deny more; between them the more specific entry wins
  and, for the same name, deny.
- reported: sites the school's IT staff blocked from the report queue
  (filterd/state/site_reports.py); school-wide, checked before the office's
  allow/deny additions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from filterd.policy.decision import RuleSource
from filterd.policy.domains import DomainEntry, DomainTable

FEED_KINDS = ("protected", "education", "allow", "deny")


def feed_table(kind: str, names: Iterable[str], version: int | None) -> DomainTable:
    src = RuleSource("feed", kind, version=str(version) if version is not None else None)
    return DomainTable(DomainEntry(n, False, src) for n in names)


@dataclass(frozen=True, slots=True)
class FeedTables:
    protected: DomainTable = field(default_factory=DomainTable)
    education: DomainTable = field(default_factory=DomainTable)
    allow: DomainTable = field(default_factory=DomainTable)
    deny: DomainTable = field(default_factory=DomainTable)
    reported: DomainTable = field(default_factory=DomainTable)

    def __bool__(self) -> bool:
        return bool(self.protected or self.education or self.allow or self.deny
                    or self.reported)

    def match_additions(self, chain: list[str]) -> tuple[bool, DomainEntry] | None:
        """(allowed?, entry): a school-blocked reported site first; then the allow/deny
        feeds, the more specific entry, deny on a tie."""
        r = self.reported.match(chain) if self.reported else None
        if r is not None:
            return False, r
        a = self.allow.match(chain) if self.allow else None
        d = self.deny.match(chain) if self.deny else None
        if a is None and d is None:
            return None
        if d is None:
            return True, a                                   # type: ignore[return-value]
        if a is None or len(d.domain) >= len(a.domain):
            return False, d
        return True, a


def reported_table(sites: Iterable[tuple[str, str]]) -> DomainTable:
    """(site, report id) pairs the school blocked after a report."""
    return DomainTable(DomainEntry(site, False, RuleSource("report", rid)) for site, rid in sites)


NO_FEEDS = FeedTables()
