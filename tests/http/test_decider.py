from __future__ import annotations

from filterd.http.decider import Decider, domain_matches
from filterd.policy.decision import Action, Reason


def make(engine, **kw) -> Decider:
    return Decider(lambda: engine, **kw)


def test_url_prefix_blocks_only_always_blocked_categories(fake_engine):
    engine = fake_engine()
    d = make(engine)
    q = d.query("allowed.test", "10.0.0.1", "http", url="http://allowed.test/bad/page")
    decision = d.decide(q)
    assert decision.action is Action.BLOCK and decision.category == "violence"
    assert decision.rule == "allowed.test/bad/" and decision.source.name == "ut1-violence-urls"
    assert decision.source.version == "2026-11-25"
    # games is not always blocked for the group: the URL hit does not block
    q = d.query("allowed.test", "10.0.0.1", "http", url="http://allowed.test/games/x")
    assert d.decide(q).action is Action.ALLOW
    # no URL, no URL rule
    assert d.decide(d.query("allowed.test", "10.0.0.1", "sni")).action is Action.ALLOW


def test_engine_swap_applies_to_the_next_decision(fake_engine):
    engines = [fake_engine()]
    d = Decider(lambda: engines[0])
    q = d.query("new.test", "10.0.0.1", "sni")
    assert not d.decide(q).blocked
    engines[0] = fake_engine(blocked={"new.test": "adult"})
    assert d.decide(q).blocked and d.decide(q).reason is Reason.CATEGORY


def test_intercepts_only_opted_in_groups_and_never_no_intercept_sites(fake_engine):
    d = make(fake_engine(), intercept_groups={"managed"}, no_intercept=("bank.test",))
    assert d.intercepts("127.0.0.2", "www.example.test")
    assert not d.intercepts("127.0.0.2", "ib.bank.test")
    assert not d.intercepts("10.0.0.1", "www.example.test")


def test_domain_matches():
    assert domain_matches("a.b.test", ("b.test",)) and domain_matches("b.test", ("b.test",))
    assert not domain_matches("ab.test", ("b.test",))


def test_default_no_intercept_list_covers_banks_and_pinned_apps(fake_engine):
    from filterd.http.decider import DEFAULT_NO_INTERCEPT
    from filterd.http.service import HttpSettings

    assert HttpSettings().no_intercept == DEFAULT_NO_INTERCEPT
    d = make(fake_engine(), intercept_groups={"managed"})  # the default list
    for name in ("portal.vietcombank.com.vn", "momo.vn", "accounts.google.com",
                 "swscan.apple.com", "web.whatsapp.com"):
        assert not d.intercepts("127.0.0.2", name), name
    assert d.intercepts("127.0.0.2", "www.example.test")
