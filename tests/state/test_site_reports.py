"""The school's queue of reported sites: what is kept, what is refused, the rate limit."""

from __future__ import annotations

import sqlite3

import pytest

from filterd.state.db import db_path
from filterd.state.site_reports import ReportRateLimited, SiteReportError, SiteReportStore

CATS = {"adult", "violence", "scam"}


@pytest.fixture
def store(tmp_path):
    s = SiteReportStore(tmp_path)
    yield s
    s.close()


def test_a_report_keeps_the_site_choices_and_note_never_the_device(store, tmp_path):
    r = store.add("HTTPS://Bad.Example/path?q=1", ["violence", "violence", "scam"],
                  "xem\x00 ở đây\u2028", client_ip="10.1.2.3", known_categories=CATS)
    assert (r.site, r.url, r.categories, r.note, r.status) == (
        "bad.example", "HTTPS://Bad.Example/path?q=1", ("violence", "scam"), "xem ở đây", "new")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("filterd.db*"))
    assert b"10.1.2.3" not in raw
    cols = [c[1] for c in sqlite3.connect(db_path(tmp_path)).execute(
        "PRAGMA table_info(site_reports)")]
    assert not {"client_ip", "client_mac", "device"} & set(cols)


@pytest.mark.parametrize(("site", "cats", "field"), [
    ("", ["adult"], "site"),
    ("not a site", ["adult"], "site"),
    ("localhost", ["adult"], "site"),
    ("ftp://files.example/x", ["adult"], "site"),
    ("x" * 2001, ["adult"], "site"),
    ("ok.example", [], "categories"),
    ("ok.example", ["everything"], "categories"),
])
def test_bad_input_is_refused_with_its_field(store, site, cats, field):
    with pytest.raises(SiteReportError) as exc:
        store.add(site, cats, "", client_ip="10.1.2.3", known_categories=CATS)
    assert exc.value.field == field
    assert store.all() == []


def test_five_reports_an_hour_per_device(store):
    for i in range(5):
        store.add(f"s{i}.example", ["adult"], "", client_ip="10.1.2.3",
                  known_categories=CATS, now=1000.0 + i)
    with pytest.raises(ReportRateLimited):
        store.add("s6.example", ["adult"], "", client_ip="10.1.2.3", known_categories=CATS,
                  now=1010.0)
    store.add("other.example", ["adult"], "", client_ip="10.1.2.4", known_categories=CATS,
              now=1010.0)
    store.add("later.example", ["adult"], "", client_ip="10.1.2.3", known_categories=CATS,
              now=1000.0 + 3601)


def test_what_goes_to_the_office(store):
    a = store.add("a.example", ["adult"], "", client_ip="1", known_categories=CATS)
    b = store.add("b.example", ["adult"], "", client_ip="1", known_categories=CATS)
    c = store.add("c.example", ["adult"], "", client_ip="1", known_categories=CATS)
    store.decide(c.id, "dismissed", by="thu.ha")
    assert store.to_forward(automatic=False) == []
    store.request_forward(a.id)
    assert [r.site for r in store.to_forward(automatic=False)] == ["a.example"]
    assert {r.site for r in store.to_forward(automatic=True)} == {"a.example", "b.example"}
    store.mark_forwarded([a.id])
    store.set_office_outcome(a.id, "accepted", "2026-12-01T10:00:00Z")
    store.set_office_outcome(b.id, "accepted", "2026-12-01T10:00:00Z")   # never sent: ignored
    assert store.get(a.id).office_status == "accepted"
    assert store.get(b.id).office_status is None
    assert [r.site for r in store.to_forward(automatic=True)] == ["b.example"]


def test_blocked_sites_feed_the_engine(store):
    r = store.add("harm.example", ["violence"], "", client_ip="1", known_categories=CATS)
    assert store.blocked_sites() == []
    store.decide(r.id, "blocked", by="thu.ha")
    assert store.blocked_sites() == [("harm.example", r.id)]
    with pytest.raises(SiteReportError):
        store.decide(r.id, "new", by="thu.ha")
