from __future__ import annotations

from admin_ui import audit
from admin_ui.store import open_admin_db


def test_record_search_count(tmp_path):
    db = open_admin_db(tmp_path)
    audit.record(db, actor="a", role="admin", action="x.y", target="t", reason="r")
    audit.record(db, actor="b", role="teacher", action="z", target="t")
    assert audit.count(db) == 2 and audit.count(db, actor="a") == 1
    [row] = audit.search(db, action="z")
    assert row["actor"] == "b" and row["outcome"] == "ok"
    db.conn.close()


def test_diffs():
    d = audit.text_diff("a: 1\n", "a: 2\n", "p.yaml")
    assert "-a: 1" in d and "+a: 2" in d and "a/p.yaml" in d
    v = audit.value_diff(None, {"k": "v"})
    assert '+ "k": "v"' in v or '+{' in v


def test_csv_defuses_formulas():
    text = audit.to_csv([{"a": "=1+1", "b": "@x", "c": "fine", "d": None}], ["a", "b", "c", "d"])
    assert text.splitlines()[1] == "'=1+1,'@x,fine,"
