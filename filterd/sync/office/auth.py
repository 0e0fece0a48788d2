"""Sign in and out (argon2 hashes, signed session cookie), language switch, role checks."""

from __future__ import annotations

from functools import wraps

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from filterd import webauth
from filterd.sync.office.i18n import LANGUAGES, translate

bp = Blueprint("auth", __name__)
ROLES = ("admin", "viewer")


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("user"):
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)
    return wrapper


def admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if session.get("role") != "admin":
            abort(403, translate("Only administrators can do this.", g.lang))
        return view(*args, **kwargs)
    return wrapper


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        storage = current_app.extensions["office"]["storage"]
        row = storage.user(request.form.get("username", ""))
        if row and webauth.verify_password(row[1], request.form.get("password", "")):
            lang = session.get("lang")
            session.clear()  # a fresh session (and CSRF token) after signing in
            session.permanent = True
            session.update(user=row[0], role=row[2])
            if lang:
                session["lang"] = lang
            nxt = request.args.get("next", "")
            return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/")
        error = "Wrong user name or password."
    return render_template("office/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/lang/<code>")
def set_lang(code: str):
    if code in LANGUAGES:
        session["lang"] = code
    ref = request.referrer or "/"
    return redirect(ref if ref.startswith(request.host_url) else "/")
