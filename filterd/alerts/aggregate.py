"""The event writer's hook: the batch's events that match a rule, counted into alerts.

`AlertSink(rules_of, hold)` is called by the event log with its open transaction and
the batch it has just inserted. Events are summed per rule and device in Python first
(ten queries in one batch are one UPDATE), then `filterd.state.alerts.record_hits`
counts them into the open alert of that device and rule: one alert per device per rule
per window, the rest counted into it. A SAVEPOINT keeps a failure here from costing the
batch its events.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from filterd.alerts.rules import RuleMatcher
from filterd.policy.alert_rules import NO_ALERTS, AlertRules
from filterd.state.alerts import Hit, record_hits

log = logging.getLogger(__name__)


def device_key(ip: str, mac: str | None) -> str:
    """A device is its MAC where known (it keeps it across DHCP leases), else its address."""
    return mac.lower() if mac else ip


class AlertSink:
    def __init__(self, rules_of: Callable[[], AlertRules | None], hold: float = 5.0,
                 on_due: Callable[[int], None] | None = None) -> None:
        self.rules_of = rules_of
        self.hold = hold
        self.on_due = on_due          # wakes the deliverer (same process) at once
        self._matcher: RuleMatcher | None = None
        self.counted = 0
        self.failed = 0

    def _current(self) -> RuleMatcher:
        rules = self.rules_of() or NO_ALERTS
        if self._matcher is None or self._matcher.rules is not rules:
            self._matcher = RuleMatcher(rules)   # follows reloads: the engine's policy
        return self._matcher

    def hits(self, items: Iterable[tuple[Any, ...]]) -> list[Hit]:
        matcher = self._current()
        if not matcher.rules.rules:
            return []
        acc: dict[tuple[str, str], dict[str, Any]] = {}
        for decision, query, ts, _term in items:
            for rule in matcher.match(decision, query):
                key = (rule.id, device_key(query.client_ip, query.client_mac))
                a = acc.get(key)
                if a is None:
                    acc[key] = a = {"rule": rule, "ip": query.client_ip,
                                    "mac": query.client_mac, "group": decision.group,
                                    "category": decision.category, "first": ts, "last": ts,
                                    "n": 0, "names": {}}
                a["n"] += 1
                a["last"] = max(a["last"], ts)
                a["first"] = min(a["first"], ts)
                a["names"].setdefault(decision.name, None)
        return [Hit(rule=a["rule"].id, device=key[1], client_ip=a["ip"], client_mac=a["mac"],
                    group_id=a["group"], category=a["category"], first_ts=a["first"],
                    last_ts=a["last"], attempts=a["n"], names=tuple(a["names"]),
                    threshold=a["rule"].attempts, distinct_names=a["rule"].distinct_names,
                    window=a["rule"].window, digest=a["rule"].digest)
                for key, a in acc.items()]

    def __call__(self, conn: sqlite3.Connection, items: list[tuple[Any, ...]]) -> None:
        try:
            hits = self.hits(items)
            if not hits:
                return
            conn.execute("SAVEPOINT alerts")
            try:
                due = record_hits(conn, hits, self.hold)
            except Exception:
                conn.execute("ROLLBACK TO alerts")
                conn.execute("RELEASE alerts")
                raise
            conn.execute("RELEASE alerts")
            self.counted += len(hits)
        except Exception:
            self.failed += 1
            log.exception("alerts: events not counted into alerts (the events are logged)")
            return
        if due and self.on_due is not None:
            self.on_due(due)
