"""Temporary overrides: capped, for the teacher's own groups, logged, revocable, never protected."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

from admin_ui.store import open_admin_db
from tests.admin_ui.conftest import post


def _file(backend):
    return json.loads((backend.data_dir / "overrides.json").read_text())


def test_teacher_override_lets_the_site_through_for_the_group(as_role, backend, fake_daemon):
    c = as_role("teacher")
    assert backend.decide("bad.example", "thcs").blocked
    resp = post(c, "/overrides", site="https://bad.example/lesson", group="thcs", minutes="30",
                reason="Biology lesson")
    assert resp.status_code == 302
    doc = _file(backend)
    assert doc["version"] == 1
    [item] = doc["overrides"]
    assert item["group"] == "thcs" and item["domain"] == "bad.example"
    assert item["created_by"] == "teacher1" and item["reason"] == "Biology lesson"
    expires = datetime.fromisoformat(item["expires_at"])
    assert timedelta(minutes=29) < expires - datetime.now(UTC) <= timedelta(minutes=30)
    assert stat.S_IMODE((backend.data_dir / "overrides.json").stat().st_mode) == 0o640
    assert fake_daemon.hups() == 1
    assert not backend.decide("bad.example", "thcs").blocked
    # ...and it expires by itself
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert backend.decide("bad.example", "thcs", at=later).blocked
    page = c.get("/overrides").get_data(as_text=True)
    assert "bad.example" in page and "Biology lesson" in page


def test_override_above_the_cap_is_refused(as_role, backend):
    c = as_role("teacher")
    post(c, "/overrides", site="bad.example", group="thcs", minutes="61", reason="too long")
    assert not (backend.data_dir / "overrides.json").exists()
    db = open_admin_db(backend.data_dir)
    rows = list(db.query("SELECT action, reason FROM audit WHERE action = 'override.refused'"))
    db.conn.close()
    assert rows == [{"action": "override.refused", "reason": "too long"}]  # refusals are logged


def test_teacher_cannot_override_for_another_group(as_role, backend):
    c = as_role("teacher")
    resp = post(c, "/overrides", site="bad.example", group="staff", minutes="10", reason="x")
    assert resp.status_code == 403
    assert not (backend.data_dir / "overrides.json").exists()


def test_protected_site_cannot_be_overridden(as_role, backend):
    c = as_role("admin")
    resp = post(c, "/overrides", site="cp.example", group="thcs", minutes="10", reason="x")
    assert resp.status_code == 302
    page = c.get("/overrides").get_data(as_text=True)
    assert "protected" in page or "bảo vệ" in page
    assert not (backend.data_dir / "overrides.json").exists()


def test_reason_is_required(as_role, backend):
    c = as_role("teacher")
    post(c, "/overrides", site="bad.example", group="thcs", minutes="10", reason=" ")
    assert not (backend.data_dir / "overrides.json").exists()


def test_admin_revokes_and_it_is_logged(as_role, backend):
    c = as_role("teacher")
    post(c, "/overrides", site="bad.example", group="thcs", minutes="10", reason="lesson")
    oid = _file(backend)["overrides"][0]["id"]
    post(c, "/logout")
    a = as_role("admin")
    resp = post(a, f"/overrides/{oid}/revoke", reason="not needed")
    assert resp.status_code == 302
    assert _file(backend)["overrides"] == []
    assert backend.decide("bad.example", "thcs").blocked
    audit = a.get("/audit").get_data(as_text=True)
    assert "override.create" in audit and "override.revoke" in audit and "lesson" in audit


def test_teacher_cannot_revoke_someone_elses_override(as_role, backend, make_user):
    a = as_role("admin")
    post(a, "/overrides", site="bad.example", group="thcs", minutes="10", reason="admin's")
    oid = _file(backend)["overrides"][0]["id"]
    post(a, "/logout")
    t = as_role("teacher")
    assert post(t, f"/overrides/{oid}/revoke").status_code == 403
    assert len(_file(backend)["overrides"]) == 1


def test_expired_overrides_are_pruned_on_the_next_write(as_role, backend):
    old = {"id": "old1", "group": "thcs", "domain": "bet.example",
           "expires_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
           "created_by": "x", "reason": "y"}
    backend.write_overrides([old])
    c = as_role("teacher")
    post(c, "/overrides", site="bad.example", group="thcs", minutes="10", reason="lesson")
    assert [o["domain"] for o in _file(backend)["overrides"]] == ["bad.example"]


def test_xss_in_reason_is_escaped(as_role):
    c = as_role("teacher")
    post(c, "/overrides", site="bad.example", group="thcs", minutes="10",
         reason="<img src=x onerror=alert(1)>")
    page = c.get("/overrides").get_data(as_text=True)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
