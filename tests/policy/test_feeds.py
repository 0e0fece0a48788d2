"""The office's feeds and the school's reported-site blocks in the engine (docs/precedence.md)."""

from __future__ import annotations

import dataclasses

import pytest

from filterd.policy import builtin
from filterd.policy.decision import Action, Query, Reason
from filterd.policy.engine import Engine
from filterd.policy.feeds import FeedTables, feed_table, reported_table
from filterd.policy.loader import load_policy
from filterd.policy.overrides import Override, OverrideSet

from .conftest import FakeIndex
from .test_engine import IN_CLASS, OLDER, PRECEDENCE_INDEX, PRECEDENCE_POLICY

FEEDS = FeedTables(
    protected=feed_table("protected", ["feedevil.example"], 3),
    education=feed_table("education", ["learn.example"], 2),
    allow=feed_table("allow", ["ok.adult.example", "game.example"], 5),
    deny=feed_table("deny", ["adult.example", "both.example", "denied.example",
                             "game.example"], 7),
    reported=reported_table([("harm.example", "a" * 32), ("harm2.example", "b" * 32)]),
)


@pytest.fixture
def engine(write_policy, catalog):
    def make(feeds=FEEDS):
        policy = load_policy(write_policy({"policy.yaml": PRECEDENCE_POLICY}), catalog)
        overrides = OverrideSet([Override("ov-1", "older", d, IN_CLASS.replace(hour=11),
                                          "co.lan", "bài giảng")
                                 for d in ("feedevil.example", "harm2.example")])
        index = FakeIndex({**PRECEDENCE_INDEX, "learn.example": {"games"}})
        return Engine(policy, catalog, timezone=IN_CLASS.tzinfo, index=index,
                      overrides=overrides, bypass=builtin.bypass_table(),
                      safe_search=builtin.safe_search_table(),
                      youtube=builtin.youtube_table(), feeds=feeds)
    return make


def decide(engine, name):
    return engine.decide(Query(name, OLDER, IN_CLASS))


@pytest.mark.parametrize(("name", "action", "reason", "kind"), [
    # the protected feed is row 1: a teacher's override cannot open it
    ("feedevil.example", Action.BLOCK, Reason.PROTECTED, "feed"),
    ("www.feedevil.example", Action.BLOCK, Reason.PROTECTED, "feed"),
    # the education feed is row 4: above a category the group blocks in class
    ("learn.example", Action.ALLOW, Reason.EDUCATION, "feed"),
    # the school's own group allow (row 5) still wins over the office's deny
    ("both.example", Action.ALLOW, Reason.GROUP_ALLOW, "policy"),
    # 6b: the office's deny blocks what no school rule names
    ("denied.example", Action.BLOCK, Reason.FEED_DENY, "feed"),
    # 6b: the more specific office allow wins over a broader office deny
    ("ok.adult.example", Action.ALLOW, Reason.FEED_ALLOW, "feed"),
    # the same name in both office lists: deny
    ("game.example", Action.BLOCK, Reason.FEED_DENY, "feed"),
    # 6a: a reported site blocked by the school is school-wide, above the office's lists;
    # but a teacher's override (row 3) can still open it for a lesson
    ("sub.harm.example", Action.BLOCK, Reason.REPORTED, "report"),
])
def test_feed_rows(engine, name, action, reason, kind):
    d = decide(engine(), name)
    assert (d.action, d.reason) == (action, reason), d.to_json()
    assert d.source.kind == kind


def test_override_opens_a_reported_site_but_not_the_protected_feed(engine):
    e = engine()
    assert decide(e, "harm2.example").reason is Reason.OVERRIDE
    assert decide(e, "feedevil.example").reason is Reason.PROTECTED


def test_feed_version_is_the_decisions_source(engine):
    d = decide(engine(), "denied.example")
    assert d.source.name == "deny" and d.source.version == "7"


def test_without_feeds_the_rows_below_answer(engine):
    e = engine(dataclasses.replace(FEEDS, deny=feed_table("deny", [], 1)))
    assert decide(e, "denied.example").reason is Reason.DEFAULT
    assert decide(engine(FeedTables()), "feedevil.example").action is Action.ALLOW
