"""A resolved group as plain data: for `filterd policy show` and the admin page."""

from __future__ import annotations

from typing import Any

from filterd.policy.loader import Policy


def group_summary(policy: Policy, group_id: str) -> dict[str, Any]:
    """Everything a group does after inheritance, as JSON-ready values (categories sorted)."""
    g = policy.groups[group_id]
    return {
        "id": g.id, "label_vi": g.label_vi, "label_en": g.label_en,
        "description_vi": g.description_vi, "description_en": g.description_en,
        "abstract": g.abstract, "extends": g.extends,
        "default": policy.default_group == g.id,
        "clients": [r.text for r in policy.clients.rules if r.group == g.id],
        "block_always": sorted(g.block_always),
        "block_during": {sid: sorted(cats) for sid, cats in sorted(g.block_during.items())},
        "allow": [e.rule for e in g.allow.entries],
        "deny": [e.rule for e in g.deny.entries],
        "safe_search": g.safe_search, "youtube": g.youtube,
        "block_mode": g.block_mode.value, "intercept": g.intercept,
    }
