"""The office's queue of harmful-site reports forwarded by schools.

A school forwards what its report form received: the site, what is wrong with
it (category ids), an optional note and the day, under the appliance's random
report id. No reporter, device or address is sent or stored. The queue groups
reports by site with the number of schools that reported it; accepting a site
adds it to the office's deny feed, so every school blocks it at its next pull,
and each school sees the outcome when it next forwards or syncs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filterd.errors import FilterdError
from filterd.lists.normalize import normalize_name
from filterd.sync.office.storage import Storage

MAX_REPORTS = 200          # per request
MAX_NOTE = 500
_ID = re.compile(r"^[0-9a-f]{32}$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
STATUSES = ("pending", "accepted", "rejected")


class SiteReportRefused(FilterdError):
    """A forwarded report is malformed; nothing of the request was stored."""


@dataclass(frozen=True, slots=True)
class SiteGroup:
    site: str
    schools: int
    reports: int
    categories: tuple[str, ...]
    first: str
    last: str
    status: str
    notes: tuple[str, ...]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(doc: Any) -> list[dict[str, Any]]:
    """The forwarded reports, checked field by field (SiteReportRefused names the problem)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("reports"), list):
        raise SiteReportRefused("expected {\"reports\": [...]}")
    reports = doc["reports"]
    if len(reports) > MAX_REPORTS:
        raise SiteReportRefused(f"at most {MAX_REPORTS} reports per request")
    allowed = {"id", "site", "categories", "note", "reported_on"}
    out = []
    for i, r in enumerate(reports):
        if not isinstance(r, dict) or set(r) - allowed:
            # a field the office does not know may be an identity: refuse, never store it
            raise SiteReportRefused(f"report {i}: unexpected fields "
                                    f"{sorted(set(r) - allowed) if isinstance(r, dict) else r}")
        rid, site = r.get("id"), r.get("site")
        if not isinstance(rid, str) or not _ID.match(rid):
            raise SiteReportRefused(f"report {i}: bad id")
        if not isinstance(site, str) or normalize_name(site) != site or "." not in site:
            raise SiteReportRefused(f"report {i}: site is not a normalized domain name")
        cats = r.get("categories")
        if not isinstance(cats, list) or not cats or len(cats) > 8 or \
                not all(isinstance(c, str) and _CATEGORY.match(c) for c in cats):
            raise SiteReportRefused(f"report {i}: bad categories")
        note = r.get("note", "")
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise SiteReportRefused(f"report {i}: note longer than {MAX_NOTE} characters")
        day = r.get("reported_on")
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except (TypeError, ValueError) as exc:
            raise SiteReportRefused(f"report {i}: reported_on must be YYYY-MM-DD") from exc
        out.append({"id": rid, "site": site, "categories": ",".join(dict.fromkeys(cats)),
                    "note": note, "reported_on": day})
    return out


class SiteReportQueue:
    def __init__(self, storage: Storage, office_dir: Path) -> None:
        self.storage = storage
        self.office_dir = Path(office_dir)

    def receive(self, school_id: str, doc: Any, *,
                first: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """Store new reports (idempotent by id); answer every known report's status.

        `first(tx)` runs at the start of the same transaction (the request's nonce).
        """
        reports = validate(doc)
        at = _now()
        with self.storage.transaction() as tx:
            if first is not None:
                first(tx)
            for r in reports:
                # a site already decided keeps its decision for new reports of it
                decided = tx.query("SELECT status, decided_at FROM site_reports WHERE site = ?"
                                   " AND status != 'pending' ORDER BY decided_at DESC LIMIT 1",
                                   (r["site"],))
                status, decided_at = decided[0] if decided else ("pending", None)
                tx.execute("INSERT INTO site_reports (id, school_id, site, categories, note,"
                           " reported_at, received_at, status, decided_at) VALUES"
                           " (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                           (r["id"], school_id, r["site"], r["categories"], r["note"],
                            r["reported_on"], at, status, decided_at))
        return {"status": "stored", "outcomes": self.outcomes(school_id)}

    def outcomes(self, school_id: str) -> dict[str, dict[str, str | None]]:
        return {rid: {"status": st, "decided_at": at} for rid, st, at in self.storage.query(
            "SELECT id, status, decided_at FROM site_reports WHERE school_id = ?",
            (school_id,))}

    def groups(self, status: str | None = "pending") -> list[SiteGroup]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self.storage.query(
            "SELECT site, school_id, categories, note, reported_at, status FROM site_reports "
            f"{where} ORDER BY site, reported_at", args)
        by_site: dict[str, list[tuple]] = {}
        for row in rows:
            by_site.setdefault(row[0], []).append(row)
        out = []
        for site, rs in by_site.items():
            cats = tuple(dict.fromkeys(c for r in rs for c in r[2].split(",") if c))
            out.append(SiteGroup(site, len({r[1] for r in rs}), len(rs), cats,
                                 min(r[4] for r in rs), max(r[4] for r in rs), rs[-1][5],
                                 tuple(r[3] for r in rs if r[3])[:20]))
        out.sort(key=lambda g: (-g.schools, -g.reports, g.site))
        return out

    def decide(self, site: str, status: str, *, by: str) -> int:
        """Accept (add to the deny feed) or reject every report of `site`; return how many."""
        if status not in ("accepted", "rejected"):
            raise SiteReportRefused(f"unknown decision {status!r}")
        if status == "accepted":
            from filterd.sync.office.feeds import FeedPublisher

            FeedPublisher(self.storage, self.office_dir).add("deny", [site])
        with self.storage.transaction() as tx:
            return tx.execute("UPDATE site_reports SET status = ?, decided_at = ?,"
                              " decided_by = ? WHERE site = ?", (status, _now(), by, site))
