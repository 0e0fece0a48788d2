"""Office side of feeds and reports of harmful sites: API, queue, pages (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from filterd.sync.feed import open_envelope
from filterd.sync.office.app import create_app
from filterd.sync.office.feeds import FeedPublisher, office_public_raw
from filterd.sync.office.site_reports import SiteReportQueue
from filterd.sync.signing import sign
from filterd.webauth import hash_password

from ..conftest import TZ, enrol_with_key


@pytest.fixture
def app(storage, tmp_path):
    a = create_app(storage, secret=b"k" * 32, timezone=TZ, data_dir=tmp_path / "odir")
    a.config["TESTING"] = True
    storage.set_user("admin1", hash_password("admin-pass"), "admin")
    storage.set_user("viewer1", hash_password("viewer-pass"), "viewer")
    return a


def login(client, user, password):
    page = client.get("/login").get_data(as_text=True)
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": user, "password": password, "csrf_token": tok})


def csrf(client, path):
    return re.search(r'name="csrf_token" value="([^"]+)"',
                     client.get(path).get_data(as_text=True)).group(1)


def report(rid, site, cats=("adult",), note="", day="2026-12-01"):
    return {"id": rid, "site": site, "categories": list(cats), "note": note,
            "reported_on": day}


def post_reports(client, cred, reports):
    body = json.dumps({"reports": reports}).encode()
    headers = sign(cred, body, datetime.now(UTC).timestamp())
    return client.post("/api/v1/site-reports", data=body, headers=headers)


def test_feed_api_etag_and_versions(app, storage, tmp_path):
    c = app.test_client()
    assert c.get("/api/v1/feeds/protected").status_code == 404
    assert c.get("/api/v1/feeds/everything").status_code == 404
    p = FeedPublisher(storage, tmp_path / "odir")
    p.publish("protected", ["bad.example"])
    r = c.get("/api/v1/feeds/protected")
    assert r.status_code == 200 and r.headers["ETag"] == '"v1"'
    feed = open_envelope(r.data, office_public_raw(tmp_path / "odir"))
    assert feed.entries == ("bad.example",)
    assert c.get("/api/v1/feeds/protected", headers={"If-None-Match": '"v1"'}).status_code == 304
    p.add("protected", ["worse.example"])
    r = c.get("/api/v1/feeds/protected", headers={"If-None-Match": '"v1"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"v2"'
    # the office key file is the office's own, readable by its user only
    assert (tmp_path / "odir" / "feed-signing.key").stat().st_mode & 0o077 == 0


def test_site_reports_queue_grouped_by_site_and_accept_feeds_every_school(app, storage,
                                                                          tmp_path):
    c = app.test_client()
    a = enrol_with_key(storage, "sa", "Ba Đình", "Hà Nội")
    b = enrol_with_key(storage, "sb", "Cầu Giấy", "Hà Nội")
    r = post_reports(c, a, [report("a" * 32, "bad.example", note="<script>x</script>")])
    assert r.status_code == 200, r.data
    assert r.json["outcomes"] == {"a" * 32: {"status": "pending", "decided_at": None}}
    assert post_reports(c, b, [report("b" * 32, "bad.example", ("violence",))]).status_code == 200
    # the same report twice is stored once
    assert post_reports(c, a, [report("a" * 32, "bad.example")]).status_code == 200
    groups = SiteReportQueue(storage, tmp_path / "odir").groups()
    assert [(g.site, g.schools, g.reports) for g in groups] == [("bad.example", 2, 2)]
    login(c, "admin1", "admin-pass")
    page = c.get("/site-reports").get_data(as_text=True)
    assert "bad.example" in page and "&lt;script&gt;" in page and "<script>x" not in page
    assert "Nội dung người lớn" in page or "người lớn" in page.lower()
    tok = csrf(c, "/site-reports")
    r = c.post("/site-reports/decide", data={"site": "bad.example", "status": "accepted",
                                             "csrf_token": tok})
    assert r.status_code == 302
    deny = FeedPublisher(storage, tmp_path / "odir").names("deny")
    assert deny == ("bad.example",)
    # each school sees the outcome at its next exchange
    r = post_reports(c, b, [])
    assert r.json["outcomes"]["b" * 32]["status"] == "accepted"


@pytest.mark.parametrize("bad", [
    {"reports": [{"id": "c" * 32, "site": "x.example", "categories": ["adult"], "note": "",
                  "reported_on": "2026-12-01", "client_ip": "10.0.0.5"}]},
    {"reports": [report("c" * 32, "Not A Name")]},
    {"reports": [report("short", "x.example")]},
    {"reports": [report("c" * 32, "x.example", cats=())]},
    {"reports": [report("c" * 32, "x.example", note="n" * 501)]},
    {"reports": [report("c" * 32, "x.example", day="yesterday")]},
    {"nothing": 1},
])
def test_malformed_or_identifying_reports_refused_nothing_stored(app, storage, bad):
    c = app.test_client()
    cred = enrol_with_key(storage, "sa", "Ba Đình", "Hà Nội")
    body = json.dumps(bad).encode()
    r = c.post("/api/v1/site-reports", data=body,
               headers=sign(cred, body, datetime.now(UTC).timestamp()))
    assert r.status_code == 400
    assert storage.query("SELECT COUNT(*) FROM site_reports")[0][0] == 0


def test_unsigned_or_replayed_reports_refused(app, storage):
    c = app.test_client()
    cred = enrol_with_key(storage, "sa", "Ba Đình", "Hà Nội")
    body = json.dumps({"reports": [report("d" * 32, "x.example")]}).encode()
    assert c.post("/api/v1/site-reports", data=body).status_code == 401
    headers = sign(cred, body, datetime.now(UTC).timestamp())
    assert c.post("/api/v1/site-reports", data=body, headers=headers).status_code == 200
    assert c.post("/api/v1/site-reports", data=body, headers=headers).status_code == 409


def test_feeds_page_shows_who_is_behind_and_viewer_cannot_publish(app, storage, tmp_path):
    c = app.test_client()
    enrol_with_key(storage, "sa", "Ba Đình", "Hà Nội")
    p = FeedPublisher(storage, tmp_path / "odir")
    p.publish("protected", ["bad.example"])
    c.get("/api/v1/feeds/protected", headers={"X-Filterd-School": "sa"})
    p.add("protected", ["worse.example"])
    login(c, "viewer1", "viewer-pass")
    page = c.get("/feeds").get_data(as_text=True)
    assert "THCS sa" in page and "Chưa cập nhật" in page
    assert "Danh sách nội dung vi phạm pháp luật" in page
    assert "protected" not in re.sub(r"<[^>]+>", " ", page).replace("/feeds/protected", "")
    tok = csrf(c, "/feeds")
    r = c.post("/feeds/deny", data={"names": "x.example", "csrf_token": tok})
    assert r.status_code == 403


def test_admin_publishes_from_the_page(app, storage, tmp_path):
    c = app.test_client()
    login(c, "admin1", "admin-pass")
    tok = csrf(c, "/feeds")
    r = c.post("/feeds/deny", data={"names": "a.example\n# note\nb.example", "action": "add",
                                    "csrf_token": tok})
    assert r.status_code == 302
    assert FeedPublisher(storage, tmp_path / "odir").names("deny") == ("a.example", "b.example")
    r = c.post("/feeds/deny", data={"names": "not a name", "csrf_token": tok},
               follow_redirects=True)
    assert "Chưa phát hành" in r.get_data(as_text=True)
    r = c.post("/feeds/notices", data={"title": "Lịch cập nhật", "body": "Tối thứ Sáu.",
                                       "csrf_token": tok}, follow_redirects=True)
    assert "Lịch cập nhật" in r.get_data(as_text=True)


def test_the_daily_report_says_which_feed_versions_a_school_runs(app, storage, tmp_path):
    from datetime import date

    from filterd.sync import schema
    from filterd.sync.office.ingest import receive
    from filterd.sync.report import ListInfo, build_report

    from ..conftest import generate_days, make_event_db

    cred = enrol_with_key(storage, "sa", "Ba Đình", "Hà Nội")
    conn = make_event_db(tmp_path / "f.db")
    days = [date(2026, 11, 20), date(2026, 11, 21)]
    generate_days(conn, days)

    def upload(day, feeds):
        report = build_report(conn, school_id="sa", day=day, tz=TZ, secret=b"x" * 32, k=5,
                              lists=ListInfo(feeds=feeds))
        assert report["lists"]["feeds"] == dict(feeds)
        body = schema.encode(report)
        return receive(storage, sign(cred, body, datetime.now(UTC).timestamp()), body)

    assert upload(days[1], (("deny", 2), ("protected", 5)))["status"] == "stored"
    # a late upload of an older day does not move the school back
    assert upload(days[0], (("protected", 4),))["status"] == "stored"
    pulls = FeedPublisher(storage, tmp_path / "odir").pulls()["sa"]
    assert pulls["protected"][0] == 5 and pulls["deny"][0] == 2
