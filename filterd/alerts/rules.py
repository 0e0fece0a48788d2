"""Which alert rules an event matches: `RuleMatcher(rules).match(decision, query)`.

Runs on the event writer thread for every logged (blocked, rewritten or bypass) event,
so it is a few set lookups, precomputed per rule.
"""

from __future__ import annotations

from filterd.policy.alert_rules import BYPASS_CATEGORIES, AlertRule, AlertRules
from filterd.policy.decision import Action, Decision, Query, Reason


def matches(rule: AlertRule, decision: Decision, query: Query) -> bool:
    if rule.groups is not None and decision.group not in rule.groups:
        return False
    if rule.when == "protected":
        return decision.reason is Reason.PROTECTED
    if rule.when == "bypass":
        # The bypass monitor (a device talking to an outside resolver) or a blocked
        # resolver / VPN / proxy name. Not the canary names: browsers ask them on their own.
        if query.path == "bypass":
            return True
        return decision.action is Action.BLOCK and decision.category is not None and (
            decision.category in BYPASS_CATEGORIES or decision.category in rule.categories)
    # when: category -- a block for one of the rule's categories (never the protected list,
    # which has its own rule)
    return (decision.action is Action.BLOCK and decision.reason is not Reason.PROTECTED
            and decision.category in rule.categories)


class RuleMatcher:
    def __init__(self, rules: AlertRules) -> None:
        self.rules = rules
        self._immediate = tuple(r for r in rules.rules)

    def match(self, decision: Decision, query: Query) -> list[AlertRule]:
        if decision.action is Action.ALLOW and query.path != "bypass":
            return []
        return [r for r in self._immediate if matches(r, decision, query)]
