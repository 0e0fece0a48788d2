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
    assert "policy.edit" in page and "override.create" not in page
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
