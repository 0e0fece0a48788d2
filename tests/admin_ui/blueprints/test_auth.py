"""Accounts page (admin) and own password change."""

from __future__ import annotations

from admin_ui.accounts import list_users
from admin_ui.store import open_admin_db
from tests.admin_ui.conftest import PASSWORD, https_client, login, post


def _users(backend):
    db = open_admin_db(backend.data_dir)
    try:
        return {u.name: u for u in list_users(db)}
    finally:
        db.conn.close()


def test_admin_creates_a_teacher_with_groups(as_role, backend, client):
    c = as_role("admin")
    resp = post(c, "/users", name="co.lan", password=PASSWORD, role="teacher", groups=["thcs"],
                reason="new teacher")
    assert resp.status_code == 302
    u = _users(backend)["co.lan"]
    assert u.role == "teacher" and u.groups == ("thcs",)
    assert "account.create" in c.get("/audit").get_data(as_text=True)


def test_weak_password_refused_with_translated_message(as_role, backend):
    c = as_role("admin")
    post(c, "/users", name="co.lan", password="short", role="teacher")
    assert "co.lan" not in _users(backend)
    assert "Mật khẩu phải có ít nhất 10 ký tự" in c.get("/users").get_data(as_text=True)


def test_the_last_admin_cannot_be_demoted_or_disabled(as_role, backend):
    c = as_role("admin")  # accounts: first-admin (id 1) and admin1 (id 2)
    post(c, "/users/1", role="admin", disabled="1", reason="left the school")
    assert _users(backend)["first-admin"].disabled
    post(c, "/users/2", role="viewer", reason="oops")
    assert _users(backend)["admin1"].role == "admin"
    assert "Không thể bỏ quản trị viên cuối cùng" in c.get("/users").get_data(as_text=True)


def test_disabled_user_is_signed_out(as_role, backend, app):
    c = as_role("viewer")
    db = open_admin_db(backend.data_dir)
    db.execute("UPDATE users SET disabled = 1 WHERE name = 'viewer1'")
    db.conn.commit()
    db.conn.close()
    assert c.get("/").status_code == 302


def test_change_own_password(as_role, client):
    c = as_role("teacher")
    new = "another long password"
    resp = post(c, "/account/password", current=PASSWORD, password=new, password2=new)
    assert resp.status_code == 302
    post(c, "/logout")
    assert login(c, "teacher1").status_code == 401
    assert login(c, "teacher1", new).status_code == 302


def test_change_password_needs_current(as_role):
    c = as_role("teacher")
    resp = post(c, "/account/password", current="wrong", password="x" * 12, password2="x" * 12)
    assert resp.status_code == 400


def test_language_switch_only_redirects_locally(client):
    resp = client.get("/lang/en?next=//evil.example/")
    assert resp.headers["Location"] == "/"
    assert client.get("/lang/fr").status_code == 404


def test_password_reset_by_admin_ends_the_users_other_sessions(as_role, app, backend):
    teacher = as_role("teacher")
    assert teacher.get("/why").status_code == 200
    admin = https_client(app)
    assert login(admin, "first-admin").status_code == 302
    tid = _users(backend)["teacher1"].id
    post(admin, f"/users/{tid}", role="teacher", groups=["thcs"], password="a brand new password",
         reason="forgot it")
    assert teacher.get("/why").status_code == 302  # signed out
    assert admin.get("/").status_code == 200
