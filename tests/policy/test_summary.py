"""group_summary: a resolved group as plain data."""

from __future__ import annotations

import json

from filterd.policy.loader import load_policy
from filterd.policy.summary import group_summary


def test_summary_after_inheritance(write_policy, catalog):
    p = load_policy(write_policy(), catalog)
    s = group_summary(p, "strict")
    assert s["extends"] == "older" and s["default"] is True
    assert s["clients"] == ["10.0.41.0/24", "10.0.50.10-10.0.50.20"]
    assert s["block_always"] == ["adult", "doh", "gambling", "games"]
    assert s["block_during"] == {"class": ["games", "social_networks"]}
    assert "=only.example" in s["allow"] and s["youtube"] == "strict"
    json.dumps(s)  # JSON-ready
