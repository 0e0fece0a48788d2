"""Dashboard: charts from the counts table, top blocked names and bypass attempts from events."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta


def test_dashboard_without_data(as_role):
    page = as_role("viewer").get("/").get_data(as_text=True)
    assert "Chưa có thống kê" in page


def test_dashboard_charts_from_counts_and_events(as_role, shared_db):
    now = datetime.now(UTC)
    hour = now.strftime("%Y-%m-%dT%H")
    old = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H")
    shared_db["counts"].insert_all([
        {"hour": hour, "group_id": "thcs", "category": "adult", "action": "block", "path": "dns",
         "n": 40},
        {"hour": hour, "group_id": "staff", "category": "gambling", "action": "block",
         "path": "dns", "n": 2},
        {"hour": old, "group_id": "thcs", "category": "gambling", "action": "block", "path": "dns",
         "n": 100},
        {"hour": hour, "group_id": "thcs", "category": "", "action": "allow", "path": "dns",
         "n": 9999},
    ])
    shared_db["events"].insert_all([
        {"ts": time.time(), "group_id": "thcs", "name": "bad.example", "action": "block",
         "path": "dns", "reason": "category"},
        {"ts": time.time(), "group_id": "thcs", "name": "use-application-dns.net",
         "action": "block", "path": "dns", "reason": "bypass"},
    ])
    page = as_role("viewer").get("/").get_data(as_text=True)
    tiles = re.findall(r'<span class="big">([^<]+)</span>', page)
    assert tiles[:3] == ["42", "142", "1"]   # day blocks, week blocks, bypass today
    assert "Nội dung người lớn" in page and "Cờ bạc, cá cược" in page  # category labels (vi)
    assert "<svg" in page and "<script" not in page   # charts are inline SVG, no JS
    assert "bad.example" in page
    assert "9999" not in page  # allowed queries are not blocks


def test_dashboard_in_english(as_role, shared_db):
    c = as_role("viewer")
    c.get("/lang/en")
    shared_db["counts"].insert({"hour": datetime.now(UTC).strftime("%Y-%m-%dT%H"),
                                "group_id": "thcs", "category": "adult", "action": "block",
                                "path": "dns", "n": 3})
    page = c.get("/").get_data(as_text=True)
    assert "Adult content" in page and "blocks in the last 24 hours" in page
    assert '<html lang="en">' in page


def test_dashboard_says_which_upstream_is_not_answering(as_role, monkeypatch):
    from admin_ui.backend import Backend

    monkeypatch.setattr(Backend, "upstream_health", lambda self: [
        {"upstream": "1.1.1.1:53", "answers": 40, "errors": 2, "up": True},
        {"upstream": "8.8.8.8:53", "answers": 9, "errors": 5, "up": False}])
    page = as_role("viewer").get("/").get_data(as_text=True)
    rows = re.findall(r"<tr( class=\"warn\")?><td>([^<]+)</td><td>([^<]*)</td>", page)
    assert ("", "1.1.1.1:53", "Đang trả lời") in rows
    assert (' class="warn"', "8.8.8.8:53",
            "Không trả lời: tên miền mới bị báo lỗi cho đến khi máy chủ trả lời lại") in rows


def test_dashboard_says_when_the_event_log_is_not_written(as_role, monkeypatch):
    from admin_ui.backend import Backend

    monkeypatch.setattr(Backend, "event_log_health",
                        lambda self: {"writable": False, "dropped": 1234})
    page = as_role("viewer").get("/").get_data(as_text=True)
    assert "Nhật ký sự kiện không ghi được: hãy kiểm tra dung lượng đĩa" in page
    assert "1.234 sự kiện chưa được ghi" in page or "1234 sự kiện chưa được ghi" in page
    monkeypatch.setattr(Backend, "event_log_health", lambda self: {"writable": True,
                                                                   "dropped": 0})
    page = as_role("viewer").get("/").get_data(as_text=True)
    assert "Nhật ký sự kiện" not in page
