"""The audit log page and CSV export."""

from __future__ import annotations

import csv
import io

from admin_ui import audit
from admin_ui.store import open_admin_db


def _seed(backend):
    db = open_admin_db(backend.data_dir)
    audit.record(db, actor="thu.ha", role="admin", action="policy.edit", target="thcs",
                 diff="+x\n", reason="<b>bold</b> reason")
    audit.record(db, actor="lan", role="teacher", action="override.create", target="thcs a.example",
                 reason="=HYPERLINK(\"http://evil\")")
    db.conn.close()


def test_audit_page_filters_and_escapes(as_role, backend):
    c = as_role("admin")
    _seed(backend)
    page = c.get("/audit?actor=thu.ha").get_data(as_text=True)
    rows = page.split('<article class="card audit">')[1:]
    assert len(rows) == 1 and "Sửa chính sách lọc" in rows[0]      # the action in words
    assert 'data-code="policy.edit"' in rows[0] and "Mở tạm thời một trang" not in "".join(rows)
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; reason" in page


def test_audit_csv_export(as_role, backend):
    c = as_role("admin")
    _seed(backend)
    resp = c.get("/audit.csv")
    assert resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    by_action = {r["action"]: r for r in rows}
    assert by_action["policy.edit"]["diff"] == "'+x\n"  # a leading + or = is never a formula
    assert by_action["override.create"]["reason"].startswith("'=")  # formula defused


def test_audit_export_for_a_school_year(as_role, backend):
    """The yearly review: both dates included, days in the school's time zone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    db = open_admin_db(backend.data_dir)
    for when, what in ((datetime(2025, 8, 31, 23, 30, tzinfo=hcm), "before"),
                       (datetime(2025, 9, 1, 0, 30, tzinfo=hcm), "first"),
                       (datetime(2026, 8, 31, 23, 30, tzinfo=hcm), "last"),
                       (datetime(2026, 9, 1, 0, 5, tzinfo=hcm), "after")):
        rid = audit.record(db, actor="thu.ha", role="admin", action="policy.edit", reason=what)
        db.execute("UPDATE audit SET ts = ? WHERE id = ?", [when.timestamp(), rid])
    db.conn.commit()
    db.conn.close()
    c = as_role("admin")
    body = c.get("/audit.csv?since=2025-09-01&until=2026-08-31").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert sorted(r["reason"] for r in rows) == ["first", "last"]
    assert {r["time"] for r in rows} == {"2025-09-01T00:30:00+07:00", "2026-08-31T23:30:00+07:00"}
    page = c.get("/audit?since=2025-09-01&until=2026-08-31&action=policy.edit")
    assert "2 mục" in page.get_data(as_text=True)
    assert c.get("/audit?since=not-a-date").status_code == 200   # ignored, not an error


def test_audit_search_with_sql_metacharacters(as_role, backend):
    c = as_role("admin")
    _seed(backend)
    for evil in ("' OR 1=1 --", "%", "thu.ha' --", "\\"):
        for field in ("actor", "action", "since", "until"):
            resp = c.get("/audit", query_string={field: evil})
            assert resp.status_code == 200, (field, evil)
            if field in ("actor", "action"):
                assert "0 mục" in resp.get_data(as_text=True), (field, evil)
    assert "thu.ha" in c.get("/audit.csv").get_data(as_text=True)   # table intact
