"""Sign-ins are server-side records: signing out, a password change, a role change and
disabling the account end them at once, also for a copy of the cookie (the real app,
the shipped policy and config loader)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from admin_ui import create_app
from tests.admin_ui.conftest import REPO, https_client, login, post

COOKIE = "filterd_admin"
PW = "a long password"


@pytest.fixture
def app(tmp_path: Path):
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"school_id: test-school\ndata_dir: {tmp_path / 'data'}\n"
                   f"policy_dir: {tmp_path / 'policies'}\n", encoding="utf-8")
    app = create_app(cfg, {"TESTING": True})
    from admin_ui.accounts import create_user
    from admin_ui.store import open_admin_db

    db = open_admin_db(tmp_path / "data")
    create_user(db, "admin1", PW, "admin")
    create_user(db, "co.lan", PW, "teacher", ("thcs",))
    db.conn.close()
    return app


def signed_in(app, name: str, password: str = PW):
    c = https_client(app)
    assert login(c, name, password).status_code == 302
    assert c.get("/why").status_code == 200
    return c


def replay(app, client):
    """A second browser holding a copy of `client`'s cookie."""
    other = https_client(app)
    other.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    return other


def refused(client) -> bool:
    resp = client.get("/why")
    return resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_logout_ends_every_copy_of_the_cookie(app):
    teacher = signed_in(app, "co.lan")
    copy = replay(app, teacher)
    assert copy.get("/why").status_code == 200          # the copy works while signed in
    assert post(teacher, "/logout").status_code == 302
    assert refused(copy)                                 # was 200 for up to 8 hours
    assert refused(teacher)


def test_password_change_ends_the_other_sign_ins(app):
    here = signed_in(app, "co.lan")
    elsewhere = signed_in(app, "co.lan")
    resp = post(here, "/account/password", current=PW, password="another long password",
                password2="another long password")
    assert resp.status_code == 302
    assert refused(elsewhere)
    assert here.get("/why").status_code == 200           # the one that changed it stays


@pytest.mark.parametrize("change", [{"role": "viewer"}, {"disabled": "1"},
                                    {"groups": "thpt"}])
def test_account_changes_by_an_admin_end_the_sessions(app, change):
    teacher = signed_in(app, "co.lan")
    admin = signed_in(app, "admin1")
    from admin_ui.accounts import list_users
    from admin_ui.store import open_admin_db

    db = open_admin_db(app.extensions["filterd"].data_dir)
    uid = next(u.id for u in list_users(db) if u.name == "co.lan")
    db.conn.close()
    form = {"role": "teacher", "groups": "thcs", "reason": "test", **change}
    assert post(admin, f"/users/{uid}", **form).status_code == 302
    assert refused(teacher)
    assert admin.get("/why").status_code == 200


def test_saving_an_account_unchanged_keeps_its_session(app):
    teacher = signed_in(app, "co.lan")
    admin = signed_in(app, "admin1")
    from admin_ui.accounts import list_users
    from admin_ui.store import open_admin_db

    db = open_admin_db(app.extensions["filterd"].data_dir)
    uid = next(u.id for u in list_users(db) if u.name == "co.lan")
    db.conn.close()
    post(admin, f"/users/{uid}", role="teacher", groups="thcs", reason="no change")
    assert teacher.get("/why").status_code == 200
