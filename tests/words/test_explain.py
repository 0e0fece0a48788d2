"""Explanations: Vietnamese and English, for staff and for the student."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from filterd.policy.decision import Query, Reason
from filterd.words.explain import HOTLINE_EN, HOTLINE_VI, Words, explain
from tests.policy.conftest import FakeIndex, local

AT = local(2026, 11, 25, 9, 5)


@pytest.fixture
def engine(engine_factory):
    return engine_factory(index=FakeIndex({"adult.example": {"adult"}, "game.example": {"games"}}))


def test_scheduled_category_in_both_languages(engine):
    d = engine.decide(Query("game.example", "10.0.40.5", AT))
    vi = d.text("vi")
    assert "Đã chặn game.example" in vi and "«Trò chơi trực tuyến»" in vi
    assert "«Giờ học»" in vi and "THPT" in vi and "Thứ Tư, 25/11/2026 09:05" in vi
    assert "Quy tắc: game.example — nguồn: danh sách «Trò chơi trực tuyến» (memory-games, bản v7)" \
        in Words.for_engine(engine).explain(d, "vi")
    en = d.text("en")
    assert "Blocked game.example" in en and "“Online games”" in en and "“Class hours”" in en
    assert "Upper secondary" in en and "Wed 25 Nov 2026, 09:05" in en
    staff = Words.for_engine(engine).explain(d, "vi")
    for code in ("older", "scheduled_category", "games", "class"):
        assert code not in staff.replace("memory-games", "").replace("game.example", "")


def test_child_text_is_kind_and_has_no_rule(engine):
    d = engine.decide(Query("adult.example", "10.0.40.5", AT))
    child = d.text("vi", for_staff=False)
    assert "không phù hợp với lứa tuổi của em" in child and HOTLINE_VI in child
    assert "Quy tắc" not in child and "memory-adult" not in child
    assert HOTLINE_EN in d.text("en", for_staff=False)
    games = engine.decide(Query("game.example", "10.0.40.5", AT)).text("vi", for_staff=False)
    assert HOTLINE_VI not in games       # games is not a sensitive category


def test_time_is_shown_in_the_school_zone(engine):
    d = engine.decide(Query("example.org", "10.0.40.5", datetime(2026, 11, 25, 2, 5, tzinfo=UTC)))
    assert "09:05" in explain(d, "vi")


@pytest.mark.parametrize(("name", "reason", "vi", "en"), [
    ("evil.test", Reason.PROTECTED, "vi phạm pháp luật", "illegal content"),
    ("mask.icloud.com", Reason.BYPASS, "vượt qua bộ lọc", "get around the school's filter"),
    ("vnedu.vn", Reason.EDUCATION, "trang giáo dục", "education site"),
    ("games-edu.example", Reason.GROUP_ALLOW, "danh sách cho phép của nhóm", "allowlist"),
    ("bad.example", Reason.GROUP_DENY, "danh sách chặn của nhóm", "blocklist"),
    ("adult.example", Reason.CATEGORY, "luôn bị chặn", "always blocked"),
    ("www.google.com", Reason.SAFE_SEARCH, "tìm kiếm an toàn", "safe-search"),
    ("www.youtube.com", Reason.YOUTUBE, "hạn chế vừa", "moderate restricted mode"),
    ("example.org", Reason.DEFAULT, "không có quy tắc nào chặn", "no rule blocks it"),
])
def test_every_reason_has_words(engine, name, reason, vi, en):
    d = engine.decide(Query(name, "10.0.40.5", local(2026, 11, 25, 12, 0)))
    assert d.reason is reason
    assert vi in d.text("vi") and en in d.text("en")


def test_decision_is_immutable_and_its_json_carries_everything(engine):
    """The Decision the DNS answer, block page, `filterd check` and event log all share."""
    d = engine.decide(Query("www.game.example", "10.0.40.5", AT))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.action = None  # type: ignore[misc]
    j = json.loads(d.to_json())
    assert (j["action"], j["reason"], j["category"], j["rule"]) == (
        "block", "scheduled_category", "games", "game.example")
    assert j["source"] == {"kind": "list", "name": "memory-games", "version": "v7"}
    assert j["group"] == "older" and j["group_label"] == "THPT" and j["group_label_en"]
    assert (j["schedule"], j["schedule_label"], j["schedule_label_en"]) == (
        "class", "Giờ học", "Class hours")
    assert datetime.fromisoformat(j["at"]) == AT and j["block_mode"] and j["name"] == \
        "www.game.example"
    assert j == json.loads(engine.decide(Query("www.game.example", "10.0.40.5", AT)).to_json())
