"""The application factory: first run, secret, cookies, headers, and every route's role check."""

from __future__ import annotations

import stat

from admin_ui import create_app
from admin_ui.security import SECRET_FILE
from tests.admin_ui.conftest import PASSWORD, csrf_of, https_client, login, post


def test_first_run_redirects_everything_to_setup(client):
    for url in ("/", "/groups", "/why", "/events", "/login", "/settings"):
        resp = client.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].endswith("/setup"), url


def test_first_run_creates_the_first_admin_only_once(client, app):
    client.get("/setup")
    resp = post(client, "/setup", name="thu.ha", password=PASSWORD, password2=PASSWORD)
    assert resp.status_code == 302
    assert client.get("/").status_code == 200  # signed in as the new admin
    other = https_client(app)
    other.get("/setup")
    resp = post(other, "/setup", name="mallory", password=PASSWORD, password2=PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    assert login(other, "mallory").status_code == 401


def test_setup_refuses_mismatched_passwords(client):
    client.get("/setup")
    resp = post(client, "/setup", name="thu.ha", password=PASSWORD, password2=PASSWORD + "x")
    assert resp.status_code == 400
    assert client.get("/").headers["Location"].endswith("/setup")


def test_secret_is_generated_0600_and_kept(app, backend):
    path = backend.data_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    assert len(first) >= 32
    again = create_app(backend.config, {"TESTING": True, "FILTERD_BACKEND": backend})
    assert again.config["SECRET_KEY"] == first


def test_session_cookie_is_secure_httponly_samesite(client, make_user):
    make_user("thu.ha", "admin")
    resp = login(client, "thu.ha")
    cookie = next(v for k, v in resp.headers.items() if k == "Set-Cookie")
    assert "filterd_admin=" in cookie
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_security_headers(as_role):
    c = as_role("admin")
    resp = c.get("/")
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"


def test_post_without_csrf_token_is_refused(as_role, policy_file):
    c = as_role("admin")
    before = policy_file.read_text()
    resp = c.post("/policies/groups.yaml", data={"text": "groups: {}\n", "reason": "x"})
    assert resp.status_code == 400
    resp = c.post("/policies/groups.yaml", data={"text": "groups: {}\n", "reason": "x",
                                                  "csrf_token": "forged"})
    assert resp.status_code == 400
    assert policy_file.read_text() == before


def test_login_without_csrf_token_is_refused(client, make_user):
    make_user("thu.ha", "admin")
    resp = client.post("/login", data={"name": "thu.ha", "password": PASSWORD})
    assert resp.status_code == 400


def test_every_route_declares_its_roles(app):
    undeclared = [ep for ep, view in app.view_functions.items()
                  if ep != "static" and not getattr(view, "allowed_roles", None)]
    assert undeclared == []


def test_signed_out_user_is_sent_to_login(client, make_user):
    make_user("thu.ha", "admin")
    for url in ("/", "/groups", "/why", "/events", "/audit", "/overrides"):
        resp = client.get(url)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], url


def test_login_next_only_follows_local_paths(client, make_user):
    make_user("thu.ha", "admin")
    client.get("/login")
    resp = client.post("/login?next=https://evil.example/x",
                       data={"name": "thu.ha", "password": PASSWORD, "csrf_token": csrf_of(client)})
    assert resp.headers["Location"] == "/"


def test_wrong_password_then_lockout_page(client, make_user):
    make_user("thu.ha", "admin")
    client.get("/login")
    for _ in range(5):
        resp = client.post("/login", data={"name": "thu.ha", "password": "wrong password",
                                           "csrf_token": csrf_of(client)})
        assert resp.status_code == 401
    resp = client.post("/login", data={"name": "thu.ha", "password": PASSWORD,
                                       "csrf_token": csrf_of(client)})
    assert resp.status_code == 429


def test_logout_ends_the_session(as_role):
    c = as_role("viewer")
    assert c.get("/").status_code == 200
    post(c, "/logout")
    assert c.get("/").status_code == 302


# route -> roles allowed (GET); everything else must get 403
GET_MATRIX = {
    "/": {"admin", "teacher", "viewer"},
    "/why": {"admin", "teacher", "viewer"},
    "/events": {"admin", "teacher", "viewer"},
    "/events.csv": {"admin", "teacher", "viewer"},
    "/account/password": {"admin", "teacher", "viewer"},
    "/groups": {"admin", "viewer"},
    "/groups/thcs": {"admin", "viewer"},
    "/policies/groups.yaml": {"admin", "viewer"},
    "/lists": {"admin", "viewer"},
    "/reviews": {"admin", "teacher"},
    "/overrides": {"admin", "teacher"},
    "/settings": {"admin"},
    "/users": {"admin"},
    "/audit": {"admin"},
    "/audit.csv": {"admin"},
    "/alerts": {"admin", "teacher", "viewer"},
    "/alerts/recipients": {"admin"},
    "/site-reports": {"admin"},
}

POST_ADMIN_ONLY = ("/groups/thcs", "/policies/groups.yaml", "/lists/update", "/settings", "/users",
                   "/users/1", "/reviews/1/approve", "/alerts/recipients",
                   "/alerts/recipients/1/delete", "/control/reload", "/control/restart",
                   "/alerts/test", "/site-reports/1/block", "/site-reports/1/dismiss",
                   "/site-reports/1/forward")


def test_get_routes_by_role(as_role):
    for role in ("admin", "teacher", "viewer"):
        c = as_role(role)
        for url, allowed in GET_MATRIX.items():
            code = c.get(url).status_code
            assert (code == 200) == (role in allowed), (role, url, code)
            assert code in (200, 403), (role, url, code)
        post(c, "/logout")


def test_teacher_and_viewer_get_403_on_every_admin_post(as_role, policy_file):
    before = policy_file.read_text()
    for role in ("teacher", "viewer"):
        c = as_role(role)
        for url in POST_ADMIN_ONLY:
            resp = post(c, url, text="groups: {}\n", reason="try", always="gambling")
            assert resp.status_code == 403, (role, url)
        post(c, "/logout")
    assert policy_file.read_text() == before


def test_viewer_cannot_create_overrides_or_decide_reviews(as_role):
    c = as_role("viewer")
    assert post(c, "/overrides", site="bad.example", group="thcs", minutes="10",
                reason="x").status_code == 403
    assert post(c, "/reviews/1/decline", reason="no").status_code == 403
    assert post(c, "/overrides/x1/revoke", reason="no").status_code == 403


def test_first_run_form_without_csrf_token_is_refused(client):
    client.get("/setup")
    resp = client.post("/setup", data={"name": "mallory", "password": PASSWORD,
                                       "password2": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/").headers["Location"].endswith("/setup")   # still no account
