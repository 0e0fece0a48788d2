"""Sign in and out (argon2 hashes, signed session cookie), language switch, role checks."""

from __future__ import annotations

import threading
import time
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
MAX_FAILURES = 5            # wrong passwords per user name (or address) ...
FAILURE_WINDOW = 15 * 60    # ... within this many seconds, then sign-in waits


class Throttle:
    """Counts recent failed sign-ins per key (user name, client address), in memory."""

    def __init__(self) -> None:
        self._fails: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, *keys: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            return any(len([t for t in self._fails.get(k, []) if now - t < FAILURE_WINDOW])
                       >= MAX_FAILURES for k in keys)

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                recent = [t for t in self._fails.get(k, []) if now - t < FAILURE_WINDOW]
                self._fails[k] = [*recent, now]

    def clear(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("user"):
            # keep the query (a chosen day, a date range) for after signing in
            nxt = request.full_path.rstrip("?")
            return redirect(url_for("auth.login", next=nxt))
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
        office = current_app.extensions["office"]
        throttle = office.setdefault("throttle", Throttle())
        username = request.form.get("username", "")
        keys = ("user:" + username, "addr:" + str(request.remote_addr))
        if throttle.blocked(*keys):
            error = "Too many failed sign-ins; wait 15 minutes."
            return render_template("office/login.html", error=error), 429
        row = office["storage"].user(username)
        if row and webauth.verify_password(row[1], request.form.get("password", "")):
            throttle.clear(keys[0])
            lang = session.get("lang")
            session.clear()  # a fresh session (and CSRF token) after signing in
            session.permanent = True
            session.update(user=row[0], role=row[2])
            if lang:
                session["lang"] = lang
            nxt = request.args.get("next", "")
            return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/")
        throttle.fail(*keys)
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
