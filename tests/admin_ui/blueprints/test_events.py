"""Event log search: filters, paging, CSV, client identities for admins only, SQL-safe."""

from __future__ import annotations

import csv
import io
import time

import pytest


@pytest.fixture
def events(shared_db):
    now = time.time()
    rows = []
    for i in range(120):
        rows.append({"ts": now - i * 60, "client_ip": f"127.0.0.{1 + i % 3}",
                     "client_mac": f"aa:bb:cc:dd:ee:0{i % 3}",
                     "group_id": "thcs" if i % 2 else "staff",
                     "name": "bad.example" if i % 4 == 0 else f"site{i}.example",
                     "qtype": "A", "action": "block" if i % 4 == 0 else "allow",
                     "reason": "category" if i % 4 == 0 else "default",
                     "category": "adult" if i % 4 == 0 else "", "rule": "", "source": "",
                     "list_version": "1", "path": "dns", "url": None, "search_term": None})
    rows.append({"ts": now, "client_ip": "127.0.0.9", "client_mac": None, "group_id": "thcs",
                 "name": "<script>alert(1)</script>.example", "qtype": "A", "action": "block",
                 "reason": "group_deny", "category": "", "rule": "", "source": "",
                 "list_version": "1", "path": "dns", "url": None, "search_term": None})
    shared_db["events"].insert_all(rows)
    return rows


def test_admin_sees_client_identities_and_can_filter_by_them(as_role, events):
    c = as_role("admin")
    page = c.get("/events?client=127.0.0.9").get_data(as_text=True)
    assert "127.0.0.9" in page and "Địa chỉ máy" in page
    assert "1 sự kiện" in page


def test_non_admins_never_see_client_identities(as_role, events):
    for role in ("viewer", "teacher"):
        c = as_role(role)
        page = c.get("/events?client=127.0.0.9").get_data(as_text=True)
        table = page.split("<tbody>")[1]
        assert "127.0.0." not in table and "aa:bb:cc" not in table
        assert 'name="client"' not in page and "Địa chỉ máy" not in page
        body = c.get("/events.csv?client=127.0.0.9").get_data(as_text=True)
        assert "127.0.0." not in body and "client_ip" not in body
        c.post("/logout", data={"csrf_token": "x"})


def test_teacher_sees_only_their_groups(as_role, events):
    body = as_role("teacher").get("/events.csv").get_data(as_text=True)
    groups = {r["group_id"] for r in csv.DictReader(io.StringIO(body))}
    assert groups == {"thcs"}


def test_filters_and_paging(as_role, events):
    c = as_role("admin")
    page = c.get("/events?name=bad.example&action=block&group=staff").get_data(as_text=True)
    assert "30 sự kiện" in page
    first = c.get("/events").get_data(as_text=True)
    assert "Trang 1 / 3" in first
    second = c.get("/events?page=2").get_data(as_text=True)
    assert 'rel="prev"' in second


def test_csv_export_matches_search(as_role, events):
    body = as_role("admin").get("/events.csv?category=adult").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 30 and {r["category"] for r in rows} == {"adult"}
    assert "client_ip" in rows[0]


@pytest.mark.parametrize("evil", ["' OR 1=1 --", "%", "_", "\\", "'; DROP TABLE events; --",
                                  "\" OR \"\"=\""])
def test_sql_metacharacters_in_search_are_harmless(as_role, events, shared_db, evil):
    c = as_role("admin")
    for field in ("name", "group", "category", "client", "action"):
        resp = c.get("/events", query_string={field: evil})
        assert resp.status_code == 200
        assert "0 sự kiện" in resp.get_data(as_text=True), (field, evil)
    assert shared_db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == len(events)


def test_like_wildcards_match_literally(as_role, events):
    page = as_role("admin").get("/events?name=site1_.example").get_data(as_text=True)
    assert "0 sự kiện" in page
    page = as_role("admin").get("/events?name=site1").get_data(as_text=True)
    assert "0 sự kiện" not in page


def test_xss_in_a_logged_name_is_escaped(as_role, events):
    page = as_role("admin").get("/events?group=thcs").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in page


def test_csv_defuses_spreadsheet_formulas(as_role, shared_db):
    shared_db["events"].insert({"ts": time.time(), "group_id": "thcs", "name": "=cmd|x!A1",
                                "action": "block"})
    body = as_role("admin").get("/events.csv").get_data(as_text=True)
    assert "'=cmd|x!A1" in body


def test_no_events_table_yet(as_role):
    page = as_role("admin").get("/events").get_data(as_text=True)
    assert "chưa ghi nhận sự kiện nào" in page


def test_time_range_is_in_the_schools_time_zone(as_role, events):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    since = datetime.fromtimestamp(time.time() - 90 * 60, hcm).replace(second=0, microsecond=0)
    lo, hi = since.timestamp(), since.timestamp() + 45 * 60
    want = sum(1 for r in events if lo <= r["ts"] < hi)
    fmt = "%Y-%m-%dT%H:%M"
    until_text = datetime.fromtimestamp(hi, hcm).strftime(fmt)
    body = as_role("admin").get("/events.csv", query_string={
        "since": since.strftime(fmt), "until": until_text}).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert 40 <= want <= 46 and len(rows) == want   # read as Hà Nội time, not UTC (7 h off)
