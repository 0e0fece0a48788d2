"""Engine.decide: every precedence row of docs/precedence.md, schedules, rewrites, clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.policy.clients import StaticNeighbours
from filterd.policy.decision import Action, BlockMode, Query, Reason
from filterd.policy.overrides import Override, OverrideSet

from .conftest import BASE_POLICY, FakeIndex, local

# Wednesday 2026-11-25 09:00 in Hà Nội: inside class hours.
IN_CLASS = local(2026, 11, 25, 9, 0)
# Wednesday 12:00: the lunch break, outside class hours.
LUNCH = local(2026, 11, 25, 12, 0)
OLDER = "10.0.40.5"
STRICT = "10.0.41.5"
STAFF = "10.0.2.9"

# Every name below matches its own layer AND every layer under it, so each row
# proves that its layer wins over all the lower ones.
PRECEDENCE_POLICY = BASE_POLICY.replace(
    "allow: [games-edu.example, =only.example]",
    "allow: [games-edu.example, =only.example, evil.test, mask.icloud.com, ov.example,\n"
    "            vnedu.vn, both.example]",
).replace(
    "deny: [bad.example, =exact-deny.example]",
    "deny: [bad.example, =exact-deny.example, evil.test, mask.icloud.com, ov.example,\n"
    "           vnedu.vn, both.example, www.google.com]",
).replace(
    "  - olm.vn\n", "  - olm.vn\n  - evil.test\n  - mask.icloud.com\n  - ov.example\n",
)
PRECEDENCE_INDEX = {
    "evil.test": {"games"},
    "illegal.test": {"illegal", "games"},
    "mask.icloud.com": {"doh"},
    "ov.example": {"adult"},
    "vnedu.vn": {"social_networks"},
    "both.example": {"adult"},
    "bad.example": {"adult"},
    "adult.example": {"adult", "games"},
    "game.example": {"games"},
    "www.google.com": {"games"},
    "www.youtube.com": {"social_networks"},
}


@pytest.fixture
def precedence_engine(engine_factory):
    overrides = OverrideSet([
        Override("ov-1", "older", d, IN_CLASS + timedelta(hours=1), "co.lan", "bài giảng")
        for d in ("evil.test", "illegal.test", "mask.icloud.com", "ov.example")
    ])
    return engine_factory(index=FakeIndex(PRECEDENCE_INDEX), overrides=overrides,
                          files={"policy.yaml": PRECEDENCE_POLICY})


@pytest.mark.parametrize(("row", "name", "at", "action", "reason"), [
    (1, "evil.test", IN_CLASS, Action.BLOCK, Reason.PROTECTED),
    (1, "illegal.test", IN_CLASS, Action.BLOCK, Reason.PROTECTED),
    (2, "mask.icloud.com", IN_CLASS, Action.BLOCK, Reason.BYPASS),
    (3, "ov.example", IN_CLASS, Action.ALLOW, Reason.OVERRIDE),
    (4, "vnedu.vn", IN_CLASS, Action.ALLOW, Reason.EDUCATION),
    (5, "both.example", IN_CLASS, Action.ALLOW, Reason.GROUP_ALLOW),
    (6, "bad.example", IN_CLASS, Action.BLOCK, Reason.GROUP_DENY),
    (7, "adult.example", LUNCH, Action.BLOCK, Reason.CATEGORY),
    (7, "game.example", IN_CLASS, Action.BLOCK, Reason.SCHEDULED_CATEGORY),
    (7, "www.youtube.com", IN_CLASS, Action.BLOCK, Reason.SCHEDULED_CATEGORY),
    (8, "www.youtube.com", LUNCH, Action.REWRITE, Reason.YOUTUBE),
    (8, "www.google.com.vn", IN_CLASS, Action.REWRITE, Reason.SAFE_SEARCH),
    (9, "game.example", LUNCH, Action.ALLOW, Reason.DEFAULT),
    (9, "example.org", IN_CLASS, Action.ALLOW, Reason.DEFAULT),
])
def test_precedence_rows(precedence_engine, row, name, at, action, reason):
    d = precedence_engine.decide(Query(name, OLDER, at))
    assert (d.action, d.reason) == (action, reason), d.to_json()
    assert d.group == "older"


def test_group_deny_wins_over_rewrite(precedence_engine):
    d = precedence_engine.decide(Query("www.google.com", OLDER, LUNCH))
    assert d.reason is Reason.GROUP_DENY and d.rule == "www.google.com"


def test_protected_names_the_rule_and_source(precedence_engine):
    d = precedence_engine.decide(Query("sub.evil.test", OLDER, IN_CLASS))
    assert d.reason is Reason.PROTECTED and d.category == "illegal"
    assert d.source.kind == "policy" and d.source.name.endswith("protected.txt")
    assert d.source.line == 1
    d = precedence_engine.decide(Query("illegal.test", OLDER, IN_CLASS))
    assert d.source.kind == "list" and d.source.name == "memory-illegal"
    assert d.source.version == "v7"


def test_override_only_for_its_group_and_until_it_expires(precedence_engine):
    staff = precedence_engine.decide(Query("ov.example", STAFF, IN_CLASS))
    assert staff.reason is Reason.EDUCATION and staff.group == "staff"
    strict = precedence_engine.decide(Query("ov.example", STRICT, IN_CLASS))
    assert strict.reason is Reason.EDUCATION  # ov.example is on the education list too
    later = precedence_engine.decide(Query("www.ov.example", OLDER, IN_CLASS + timedelta(hours=2)))
    assert later.reason is Reason.EDUCATION
    now = precedence_engine.decide(Query("www.ov.example", OLDER, IN_CLASS))
    assert now.reason is Reason.OVERRIDE and now.source.kind == "override"
    assert now.source.name == "ov-1"


def test_override_expiry_is_compared_with_query_time(engine_factory):
    idx = FakeIndex({"game.example": {"games"}})
    ov = OverrideSet([Override("o", "older", "game.example", IN_CLASS + timedelta(minutes=30),
                               "t", "r")])
    e = engine_factory(index=idx, overrides=ov)
    assert e.decide(Query("game.example", OLDER, IN_CLASS)).reason is Reason.OVERRIDE
    assert e.decide(Query("game.example", OLDER, IN_CLASS + timedelta(minutes=30))).reason \
        is Reason.SCHEDULED_CATEGORY
    plain = engine_factory(index=idx)   # the same policy without the override
    assert plain.decide(Query("game.example", OLDER, IN_CLASS)).blocked
    assert e.decide(Query("game.example", OLDER, IN_CLASS)).reason is Reason.OVERRIDE


def test_bypass_names(engine_factory):
    e = engine_factory()
    for name, mode in [("use-application-dns.net", BlockMode.NXDOMAIN),
                       ("mask.icloud.com", BlockMode.NXDOMAIN),
                       ("mask-h2.icloud.com", BlockMode.NXDOMAIN),
                       ("resolver.arpa", BlockMode.NODATA),
                       ("_dns.resolver.arpa", BlockMode.NODATA)]:
        for client in (OLDER, STAFF):
            d = e.decide(Query(name, client, IN_CLASS))
            assert (d.action, d.reason, d.block_mode) == (Action.BLOCK, Reason.BYPASS, mode)
    assert not e.decide(Query("icloud.com", OLDER, IN_CLASS)).blocked


def test_doh_category_blocked_for_students_not_staff(engine_factory):
    e = engine_factory(index=FakeIndex({"dns.google": {"doh"}}))
    assert e.decide(Query("dns.google", OLDER, LUNCH)).reason is Reason.CATEGORY
    assert not e.decide(Query("dns.google", STAFF, LUNCH)).blocked


def test_allow_and_deny_exact_vs_subdomains(engine_factory):
    e = engine_factory(index=FakeIndex({"only.example": {"adult"}, "games-edu.example": {"games"}}))
    assert e.decide(Query("only.example", OLDER, IN_CLASS)).reason is Reason.GROUP_ALLOW
    assert e.decide(Query("www.only.example", OLDER, IN_CLASS)).reason is Reason.CATEGORY
    assert e.decide(Query("x.games-edu.example", OLDER, IN_CLASS)).reason is Reason.GROUP_ALLOW
    assert e.decide(Query("exact-deny.example", OLDER, IN_CLASS)).reason is Reason.GROUP_DENY
    assert e.decide(Query("www.exact-deny.example", OLDER, IN_CLASS)).reason is Reason.DEFAULT
    assert e.decide(Query("a.b.bad.example", OLDER, IN_CLASS)).reason is Reason.GROUP_DENY


def test_names_are_normalised(engine_factory):
    e = engine_factory()
    d = e.decide(Query("BAD.Example.", OLDER, IN_CLASS))
    assert d.reason is Reason.GROUP_DENY and d.name == "bad.example"


def test_idna_allow_and_deny(engine_factory):
    policy = BASE_POLICY.replace("deny: [bad.example, =exact-deny.example]",
                                 "deny: [trường.vn, =Bücher.example]")
    e = engine_factory(files={"policy.yaml": policy})
    d = e.decide(Query("xn--trng-rib8295b.vn", OLDER, IN_CLASS))
    assert d.reason is Reason.GROUP_DENY and d.rule == "xn--trng-rib8295b.vn"
    assert e.decide(Query("www.xn--trng-rib8295b.vn", OLDER, IN_CLASS)).blocked
    d = e.decide(Query("xn--bcher-kva.example", OLDER, IN_CLASS))
    assert d.rule == "=xn--bcher-kva.example"
    # A Unicode name in a query (e.g. from an HTTP Host header) is normalised too.
    assert e.decide(Query("Trường.vn", OLDER, IN_CLASS)).blocked


# --- schedules in the school's time zone ---------------------------------------------------

@pytest.mark.parametrize(("at", "blocked"), [
    (local(2026, 11, 25, 6, 59), False),    # Wednesday, before class
    (local(2026, 11, 25, 7, 0), True),      # first minute of class
    (local(2026, 11, 25, 11, 29), True),
    (local(2026, 11, 25, 11, 30), False),   # end is exclusive
    (local(2026, 11, 25, 13, 30), True),
    (local(2026, 11, 25, 16, 59), True),
    (local(2026, 11, 25, 17, 0), False),
    (local(2026, 11, 28, 9, 0), True),      # Saturday is a school day
    (local(2026, 11, 29, 9, 0), False),     # Sunday is not
])
def test_class_hours_schedule(engine_factory, at, blocked):
    e = engine_factory(index=FakeIndex({"game.example": {"games"}}))
    d = e.decide(Query("game.example", OLDER, at))
    assert d.blocked is blocked
    if blocked:
        assert d.schedule == "class" and d.schedule_label == "Giờ học"
        assert d.schedule_label_en == "Class hours"


def test_one_engine_follows_the_schedule_back_and_forth(engine_factory):
    """Each group keeps the blocked categories of the last minute asked for: queries going
    back and forth across a boundary still get each minute's verdict."""
    e = engine_factory(index=FakeIndex({"game.example": {"games"}}))
    before, first, sunday = local(2026, 11, 25, 6, 59), local(2026, 11, 25, 7, 0), \
        local(2026, 11, 29, 9, 0)
    for at, blocked in [(before, False), (first, True), (before, False), (first, True),
                        (sunday, False), (first, True), (first, True)]:
        assert e.decide(Query("game.example", OLDER, at)).blocked is blocked, at
    # In UTC (the DNS path's time zone), to the microsecond around Monday 07:00 local.
    last = datetime(2026, 11, 29, 23, 59, 59, 999999, tzinfo=UTC)
    turn = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    for at, blocked in [(last, False), (turn, True), (last, False), (last, False),
                        (turn + timedelta(seconds=59.9), True), (turn, True),
                        (last - timedelta(minutes=1), False), (turn, True)]:
        assert e.decide(Query("game.example", OLDER, at)).blocked is blocked, at
    assert e.decide(Query("game.example", OLDER, turn.astimezone(
        timezone(timedelta(hours=7))) - timedelta(microseconds=1))).blocked is False


def test_query_in_utc_is_evaluated_in_the_school_time_zone(engine_factory):
    e = engine_factory(index=FakeIndex({"game.example": {"games"}}))
    # Sunday 2026-11-29 23:30 UTC is Monday 06:30 in Hà Nội (before class) ...
    sunday_utc = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert not e.decide(Query("game.example", OLDER, sunday_utc)).blocked
    # ... and Monday 00:30 UTC is Monday 07:30 local: class hours, though UTC says 00:30.
    monday_utc = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)
    assert e.decide(Query("game.example", OLDER, monday_utc)).reason is Reason.SCHEDULED_CATEGORY
    # Saturday 2026-11-28 03:00 UTC is Saturday 10:00 local: a school day.
    assert e.decide(Query("game.example", OLDER, datetime(2026, 11, 28, 3, 0, tzinfo=UTC))).blocked
    # Sunday 2026-11-29 02:00 UTC is Sunday 09:00 local: no class.
    assert not e.decide(Query("game.example", OLDER,
                              datetime(2026, 11, 29, 2, 0, tzinfo=UTC))).blocked


def test_schedule_across_midnight(engine_factory):
    policy = BASE_POLICY.replace("class: [games, social_networks]",
                                 "class: [games, social_networks]\n        night: [chat]")
    e = engine_factory(index=FakeIndex({"chat.example": {"chat"}}), files={"policy.yaml": policy})
    for at, blocked in [(local(2026, 11, 25, 21, 59), False), (local(2026, 11, 25, 22, 0), True),
                        (local(2026, 11, 25, 23, 59), True), (local(2026, 11, 26, 0, 0), True),
                        (local(2026, 11, 26, 5, 59), True), (local(2026, 11, 26, 6, 0), False),
                        (local(2026, 11, 29, 23, 0), True),   # Sunday night ...
                        (local(2026, 11, 30, 3, 0), True)]:   # ... wraps into Monday
        d = e.decide(Query("chat.example", OLDER, at))
        assert d.blocked is blocked, at
    # In UTC: 2026-11-25 16:00 UTC is 23:00 local.
    assert e.decide(Query("chat.example", OLDER, datetime(2026, 11, 25, 16, 0, tzinfo=UTC))).blocked


def test_always_wins_over_schedule_and_most_serious_category_is_reported(engine_factory):
    e = engine_factory(index=FakeIndex({"mix.example": {"games", "adult"}}))
    d = e.decide(Query("mix.example", STRICT, IN_CLASS))
    assert d.reason is Reason.CATEGORY and d.category == "adult"   # adult ranks above games
    assert d.categories == ("adult", "games")
    d = e.decide(Query("game.mix.example", STRICT, LUNCH))
    assert d.reason is Reason.CATEGORY and d.category == "adult" and d.rule == "mix.example"


def test_most_specific_list_entry_decides(engine_factory):
    e = engine_factory(index=FakeIndex({"example.net": {"games"},
                                        "adult.example.net": {"adult"}}))
    d = e.decide(Query("x.adult.example.net", OLDER, IN_CLASS))
    assert d.category == "adult" and d.rule == "adult.example.net"
    assert d.categories == ("adult", "games")


# --- rewrites ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "target"), [
    ("www.google.com", "forcesafesearch.google.com"),
    ("google.com.vn", "forcesafesearch.google.com"),
    ("www.google.com.vn", "forcesafesearch.google.com"),
    ("www.google.co.uk", "forcesafesearch.google.com"),
    ("www.bing.com", "strict.bing.com"),
    ("duckduckgo.com", "safe.duckduckgo.com"),
])
def test_safe_search_rewrite(engine_factory, name, target):
    e = engine_factory()
    d = e.decide(Query(name, OLDER, IN_CLASS))
    assert (d.action, d.reason, d.rewrite_target) == (Action.REWRITE, Reason.SAFE_SEARCH, target)
    assert not e.decide(Query(name, STAFF, IN_CLASS)).rewrite_target


def test_google_services_are_not_rewritten(engine_factory):
    e = engine_factory()
    for name in ("mail.google.com", "docs.google.com", "classroom.google.com"):
        assert e.decide(Query(name, OLDER, IN_CLASS)).action is Action.ALLOW


@pytest.mark.parametrize("name", ["www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                                  "youtube.googleapis.com", "www.youtube-nocookie.com"])
def test_youtube_levels(engine_factory, name):
    e = engine_factory()
    assert e.decide(Query(name, OLDER, LUNCH)).rewrite_target == "restrictmoderate.youtube.com"
    assert e.decide(Query(name, "10.9.9.9", LUNCH)).rewrite_target == "restrict.youtube.com"
    assert e.decide(Query(name, STAFF, LUNCH)).action is Action.ALLOW


def test_http_path_gets_enforce(engine_factory):
    e = engine_factory()
    d = e.decide(Query("www.google.com", OLDER, IN_CLASS, path="http"))
    assert d.action is Action.ENFORCE and d.reason is Reason.SAFE_SEARCH


def test_moderate_safe_search_is_enforced_in_http_only(engine_factory):
    policy = BASE_POLICY.replace("safe_search: strict", "safe_search: moderate")
    e = engine_factory(files={"policy.yaml": policy})
    d = e.decide(Query("www.google.com", OLDER, IN_CLASS))
    assert (d.action, d.rewrite_target, d.rule) == (Action.ENFORCE, None, "safe_search: moderate")


# --- clients ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("ip", "mac", "group"), [
    ("10.0.40.1", None, "older"),
    ("10.0.41.1", None, "strict"),       # /24 inside the /22: most specific wins
    ("10.0.43.255", None, "older"),
    ("10.0.50.15", None, "strict"),      # range
    ("10.0.50.21", None, "strict"),      # unknown -> default group (strict)
    ("10.0.2.3", None, "staff"),
    ("10.9.9.9", "AA-BB-CC-DD-EE-FF", "staff"),   # MAC wins
    ("2001:db8:40::1", None, "older"),
    ("2001:db8:41::1", None, "strict"),
    ("::ffff:10.0.41.7", None, "strict"),  # IPv4-mapped IPv6 is the IPv4 client
])
def test_group_for(engine_factory, ip, mac, group):
    assert engine_factory().group_for(ip, mac).id == group


def test_mac_from_neighbour_table(engine_factory):
    e = engine_factory(neighbours=StaticNeighbours({"10.0.40.77": "aa:bb:cc:dd:ee:ff"}))
    assert e.group_for("10.0.40.77").id == "staff"
    assert e.group_for("10.0.40.78").id == "older"
    d = e.decide(Query("x.example", "10.0.40.77", IN_CLASS))
    assert d.group == "staff" and d.group_label == "Giáo viên" and d.group_label_en == "Staff"


def test_client_group_is_the_group_and_says_whether_it_holds(engine_factory):
    """What the DNS verdict table keys on: the group of an address, stable unless MAC
    rules and a neighbour table can move the address to another group at any moment."""
    e = engine_factory()
    for ip in ("10.0.40.1", "10.0.41.1", "10.0.50.21", "2001:db8:41::1", "::ffff:10.0.41.7"):
        assert e.client_group(ip) == (e.group_for(ip).id, True)
    macs = engine_factory(neighbours=StaticNeighbours({"10.0.40.77": "aa:bb:cc:dd:ee:ff"}))
    assert macs.client_group("10.0.40.77") == ("staff", False)
    assert macs.client_group("10.0.40.78") == ("older", False)


def test_groups_mapping(engine_factory):
    e = engine_factory()
    assert set(e.groups) == {"base", "older", "strict", "staff"}
    assert e.groups["strict"].label_vi == "Nghiêm"


# --- properties -------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(labels=st.lists(_label, min_size=1, max_size=4), minutes=st.integers(0, 60 * 24 * 14))
def test_protected_subdomains_always_blocked(engine_factory_session, labels, minutes):
    e = engine_factory_session
    at = IN_CLASS + timedelta(minutes=minutes)
    name = ".".join([*labels, "evil.test"])
    for client in (OLDER, STRICT, STAFF, "192.0.2.1"):
        d = e.decide(Query(name, client, at))
        assert d.action is Action.BLOCK and d.reason is Reason.PROTECTED


@settings(max_examples=200, deadline=None)
@given(labels=st.lists(_label, min_size=1, max_size=4), minutes=st.integers(0, 60 * 24 * 14))
def test_decide_is_deterministic_and_total(engine_factory_session, labels, minutes):
    e = engine_factory_session
    at = IN_CLASS + timedelta(minutes=minutes)
    name = ".".join(labels)
    a = e.decide(Query(name, OLDER, at))
    b = e.decide(Query(name, OLDER, at))
    assert a == b
    assert (a.action is Action.BLOCK) == (a.block_mode is not None)


@pytest.fixture(scope="module")
def engine_factory_session(tmp_path_factory, catalog):
    from .conftest import make_engine
    d = tmp_path_factory.mktemp("p")
    (d / "policy.yaml").write_text(PRECEDENCE_POLICY, encoding="utf-8")
    (d / "protected.txt").write_text("evil.test\n", encoding="utf-8")
    return make_engine(d, catalog, FakeIndex(PRECEDENCE_INDEX))


# --- URLs on the HTTP paths -------------------------------------------------------------------

def test_url_entries_block_on_http_paths_with_schedules(engine_factory):
    from filterd.lists.index import MemoryIndex
    idx = MemoryIndex.from_entries({"game.example": {"games"}},
                                   urls={"forum.example/games/": {"games"},
                                         "forum.example/xxx/": {"adult"},
                                         "games-edu.example/xxx/": {"adult"}})
    e = engine_factory(index=idx)

    def ask(url, at, path="http"):
        return e.decide(Query("forum.example", OLDER, at, path=path, url=url))

    d = ask("http://forum.example/xxx/page.html", LUNCH)
    assert (d.reason, d.category, d.rule) == (Reason.CATEGORY, "adult", "forum.example/xxx/")
    assert d.source.name == "memory-adult"
    assert ask("http://forum.example/games/1", IN_CLASS).reason is Reason.SCHEDULED_CATEGORY
    assert not ask("http://forum.example/games/1", LUNCH).blocked
    assert not ask("http://forum.example/news/", IN_CLASS).blocked
    # staff do not block adult content (only the protected list)
    assert not e.decide(Query("forum.example", STAFF, LUNCH, path="http",
                              url="http://forum.example/xxx/")).blocked
    # a row above the URL row (the group's allow entry) still wins
    d = e.decide(Query("games-edu.example", OLDER, LUNCH, path="http",
                       url="http://games-edu.example/xxx/"))
    assert d.reason is Reason.GROUP_ALLOW


def test_intercept_flag_is_inherited(write_policy, catalog):
    from filterd.policy.loader import load_policy
    text = BASE_POLICY.replace("    youtube: moderate\n",
                               "    youtube: moderate\n    intercept: true\n")
    groups = load_policy(write_policy({"policy.yaml": text}), catalog).groups
    assert groups["older"].intercept and groups["strict"].intercept
    assert not groups["staff"].intercept


def test_bare_ipv4_entries_on_http_paths(engine_factory):
    from filterd.lists.index import MemoryIndex
    e = engine_factory(index=MemoryIndex.from_entries({"x.example": {"games"}},
                                                      ips={"203.0.113.9": {"adult"}}))
    d = e.decide(Query("203.0.113.9", OLDER, LUNCH, path="http"))
    assert (d.reason, d.category, d.rule) == (Reason.CATEGORY, "adult", "203.0.113.9")
    assert not e.decide(Query("203.0.113.10", OLDER, LUNCH, path="http")).blocked
    assert not e.decide(Query("203.0.113.9", OLDER, LUNCH, path="dns")).blocked


def test_decide_for_group_matches_a_device_of_that_group(engine_factory):
    e = engine_factory(index=FakeIndex({"game.example": {"games"}}))
    q = Query("game.example", "192.0.2.1", IN_CLASS)
    for group, device in (("older", OLDER), ("strict", STRICT), ("staff", STAFF)):
        assert e.decide_for_group(q, group) == e.decide(Query("game.example", device, IN_CLASS))
    assert e.decide_for_group(q, "base").group == "base"   # abstract groups can be asked too
    with pytest.raises(KeyError):
        e.decide_for_group(q, "nobody")


# --- precedence as a property: any mix of layers, the first row in the table wins -----------

_LAYERS = ("protected", "bypass", "override", "education", "allow", "deny", "category",
           "safe_search")


@settings(max_examples=80, deadline=None)
@given(chosen=st.sets(st.sampled_from(_LAYERS)),
       category=st.sampled_from(["always", "in_class", "out_of_class"]),
       sub=st.booleans())
def test_precedence_property(tmp_path_factory, catalog, chosen, category, sub):
    from filterd.policy import builtin
    from filterd.policy.decision import RuleSource
    from filterd.policy.domains import DomainEntry, DomainTable
    from filterd.policy.engine import Engine
    from filterd.policy.loader import load_policy

    name = "n.example"
    asked = ("www." if sub else "") + name   # a subdomain is covered by every domain entry
    d = tmp_path_factory.mktemp("prop")
    block = {"always": "always: [games]", "in_class": "during: {class: [games]}",
             "out_of_class": "during: {class: [games]}"}[category]
    (d / "policy.yaml").write_text(f"""\
version: 1
default_group: g
protected: {{files: [protected.txt]}}
education: [{name if "education" in chosen else "edu.example"}]
schedules:
  class:
    windows: [{{days: mon-sat, times: ["07:00-11:30"]}}]
groups:
  g:
    label_vi: G
    label_en: G
    block: {{{block}}}
    allow: [{name if "allow" in chosen else "a.example"}]
    deny: [{name if "deny" in chosen else "d.example"}]
    safe_search: strict
""", encoding="utf-8")
    (d / "protected.txt").write_text(name + "\n" if "protected" in chosen else "")
    src = RuleSource("builtin", "test")
    bypass = DomainTable([DomainEntry(name, False, src, BlockMode.NXDOMAIN)]
                         if "bypass" in chosen else [])
    safe = DomainTable([DomainEntry(asked, True, src, {"strict": "safe.example"})]
                       if "safe_search" in chosen else [])
    index = FakeIndex({name: {"games"}} if "category" in chosen else {})
    at = IN_CLASS if category != "out_of_class" else LUNCH
    overrides = OverrideSet([Override("o", "g", name, at + timedelta(minutes=5), "t", "r")]
                            if "override" in chosen else [])
    e = Engine(load_policy(d, catalog), catalog, timezone=IN_CLASS.tzinfo, index=index,
               overrides=overrides, bypass=bypass, safe_search=safe,
               youtube=builtin.youtube_table())
    expected = Reason.DEFAULT
    order = [("protected", Reason.PROTECTED), ("bypass", Reason.BYPASS),
             ("override", Reason.OVERRIDE), ("education", Reason.EDUCATION),
             ("allow", Reason.GROUP_ALLOW), ("deny", Reason.GROUP_DENY)]
    if category != "out_of_class":
        order.append(("category", Reason.CATEGORY if category == "always"
                      else Reason.SCHEDULED_CATEGORY))
    order.append(("safe_search", Reason.SAFE_SEARCH))
    for layer, reason in order:
        if layer in chosen:
            expected = reason
            break
    got = e.decide(Query(asked, "10.1.2.3", at))
    assert got.reason is expected, (chosen, category, got.to_json())


def test_decision_and_query_construct_as_dataclasses_do():
    """Their __init__ sets the slots directly (filterd.policy.decision._fast_init): the
    same signature, defaults, default factory, validation and frozenness."""
    import dataclasses
    import inspect

    from filterd.policy.decision import (
        Action,
        Decision,
        Query,
        QueryError,
        Reason,
        RuleSource,
    )

    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    d = Decision(Action.BLOCK, Reason.CATEGORY, "x.test", "thcs", at, "x.test",
                 RuleSource("list", "ut1", "v1"), category="adult")
    assert d.categories == () and d.valid_until is None and d.block_mode is None
    assert list(inspect.signature(Decision).parameters) == [
        f.name for f in dataclasses.fields(Decision)]
    same = dataclasses.replace(d)
    assert same == d and hash(same) == hash(d) and same is not d
    assert dataclasses.replace(d, name="y.test").name == "y.test"
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "y.test"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Decision(Action.BLOCK)  # type: ignore[call-arg]
    q = Query("x.test", "10.0.0.1", at)
    assert (q.client_mac, q.qtype, q.path, q.url) == (None, "A", "dns", None)
    with pytest.raises(QueryError):
        Query("x.test", "not-an-ip", at)
    with pytest.raises(QueryError):
        Query("x.test", "10.0.0.1", at, path="nowhere")
    with pytest.raises(QueryError):
        Query("x.test", "10.0.0.1", datetime(2026, 12, 1))
    assert RuleSource("list", "ut1") == RuleSource("list", "ut1", None, None)
