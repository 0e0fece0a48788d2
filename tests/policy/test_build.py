"""build_engine: two-phase loading; a broken file never replaces the running engine."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from filterd.build import build_engine
from filterd.config import default_config
from filterd.errors import ConfigError
from filterd.policy.decision import Query, Reason
from filterd.policy.overrides import Override, OverrideSet
from filterd.state.overrides import save as save_overrides

from .conftest import BASE_POLICY, FakeIndex, local

AT = local(2026, 11, 25, 9, 0)


@pytest.fixture
def cfg(tmp_path, write_policy):
    return dataclasses.replace(default_config(), data_dir=tmp_path / "var",
                               policy_dir=write_policy())


def test_build_reads_policy_and_overrides_file(cfg):
    save_overrides(cfg.overrides_file, OverrideSet([
        Override("o1", "older", "game.example", AT + timedelta(hours=1), "co.lan", "lesson")]))
    e = build_engine(cfg, index=FakeIndex({"game.example": {"games"}}))
    assert e.decide(Query("game.example", "10.0.40.1", AT)).reason is Reason.OVERRIDE
    assert e.decide(Query("game.example", "10.0.41.1", AT)).blocked


def test_broken_policy_keeps_the_previous_engine(cfg, write_policy):
    idx = FakeIndex({"game.example": {"games"}})
    running = build_engine(cfg, index=idx)
    broken = BASE_POLICY.replace("always: [adult, gambling, doh]", "always: [adult, gamblin]")
    write_policy({"policy.yaml": broken})
    with pytest.raises(ConfigError) as exc:
        build_engine(cfg, index=idx)
    assert exc.value.file.endswith("policy.yaml") and exc.value.line is not None
    assert exc.value.key == "groups.base.block.always"
    # The engine built before still answers, unchanged.
    d = running.decide(Query("game.example", "10.0.41.1", AT))
    assert d.blocked and d.reason is Reason.CATEGORY


def test_override_for_unknown_group_is_refused(cfg):
    bad = OverrideSet([Override("o1", "nobody", "x.example", AT, "t", "r")])
    with pytest.raises(ConfigError, match="unknown group"):
        build_engine(cfg, overrides=bad)
    save_overrides(cfg.overrides_file, bad)
    with pytest.raises(ConfigError, match="unknown group"):
        build_engine(cfg)


def test_corrupt_overrides_file_is_a_config_error(cfg):
    cfg.overrides_file.parent.mkdir(parents=True)
    cfg.overrides_file.write_text("{not json")
    with pytest.raises(ConfigError) as exc:
        build_engine(cfg)
    assert exc.value.file == str(cfg.overrides_file) and exc.value.line == 1


def test_shipped_defaults_build(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e = build_engine(default_config(), index=FakeIndex({"tiktok.com": {"short_video"},
                                                        "pornhub.com": {"adult"}}))
    thpt_in_class = e.decide(Query("www.tiktok.com", "10.10.41.7", AT))
    assert thpt_in_class.group == "thpt" and thpt_in_class.reason is Reason.SCHEDULED_CATEGORY
    assert not e.decide(Query("www.tiktok.com", "10.10.41.7", local(2026, 11, 25, 12, 0))).blocked
    assert e.decide(Query("www.tiktok.com", "10.10.20.7", local(2026, 11, 25, 12, 0))).blocked
    assert e.decide(Query("pornhub.com", "10.10.2.5", AT)).reason is Reason.DEFAULT  # staff
    unknown = e.decide(Query("pornhub.com", "192.168.99.9", AT))
    assert unknown.group == "chua_xac_dinh" and unknown.reason is Reason.CATEGORY
    assert e.decide(Query("vnedu.vn", "192.168.99.9", AT)).reason is Reason.EDUCATION


def test_intercept_groups_must_exist_in_the_policy(cfg):
    ok = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, intercept_groups=("older",)))
    build_engine(ok, index=FakeIndex({}))
    bad = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, intercept_groups=("oldr",)))
    with pytest.raises(ConfigError) as exc:
        build_engine(bad, index=FakeIndex({}))
    assert exc.value.key == "http.intercept_groups" and "oldr" in exc.value.message


# The real portals pupils and teachers must reach (policies/education.yaml).
PORTALS = ["moet.gov.vn", "csdl.moet.gov.vn", "thisinh.thithptquocgia.edu.vn",
           "temis.csdl.edu.vn", "taphuan.csdl.edu.vn", "vnedu.vn", "k12online.vn", "olm.vn",
           "smas.edu.vn", "hanoi.edu.vn", "hanhtrangso.nxbgd.vn"]


def test_shipped_education_allowlist_above_categories_below_protected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A list that wrongly files the portals under blocked categories (list mistakes happen).
    wrong = {p: {"games", "adult"} for p in PORTALS}
    e = build_engine(default_config(), index=FakeIndex(wrong))
    students = [g for g in e.groups.values() if not g.abstract and g.id != "giao_vien"]
    assert len(students) >= 5
    for group in students:
        for portal in PORTALS:
            d = e.decide_for_group(Query("www." + portal, "192.0.2.1", AT), group.id)
            assert (d.action.value, d.reason) == ("allow", Reason.EDUCATION), (group.id, portal)
    shipped = {entry.domain for entry in e.policy.education.entries}
    assert {"edu.vn", "gov.vn", "vn"}.isdisjoint(shipped)   # never a whole namespace
    # ... but never above the protected list (list category `illegal`).
    e = build_engine(default_config(), index=FakeIndex({"olm.vn": {"illegal"}}))
    assert e.decide(Query("olm.vn", "10.10.41.7", AT)).reason is Reason.PROTECTED
