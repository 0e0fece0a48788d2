"""Sign in and out, the first-run page, the language switch, and accounts (admin)."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext

from admin_ui import accounts, audit
from admin_ui.errors import AccountError, translated
from admin_ui.i18n import LANGUAGES
from admin_ui.security import ALL_ROLES, csrf_token, public, roles_required
from admin_ui.web import backend, db, form_reason, log_change, safe_next
from filterd.state import sessions

bp = Blueprint("auth", __name__)


def _start_session(user: accounts.User) -> None:
    lang = session.get("lang")
    sessions.end(db(), session.get("sid"))
    session.clear()  # a fresh session on sign-in: no fixation
    if lang:
        session["lang"] = lang
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    session["sid"] = sessions.create(db(), user.id, lifetime=lifetime,
                                     remote=request.remote_addr or "")
    session.permanent = True
    csrf_token()


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup():
    """First run: create the first admin, only while no account exists."""
    if accounts.user_count(db()) > 0:
        return redirect(url_for("auth.login"))
    error = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        password = request.form.get("password") or ""
        if password != (request.form.get("password2") or ""):
            error = gettext("The two passwords differ.")
        else:
            try:
                user = accounts.create_first_admin(db(), name, password)
            except AccountError as exc:
                error = translated(exc)
            else:
                audit.record(db(), actor=user.name, role="admin", action="account.first_admin",
                             target=user.name)
                _start_session(user)
                return redirect(url_for("dashboard.index"))
    return render_template("setup.html", error=error), (400 if error else 200)


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    error = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        password = request.form.get("password") or ""
        try:
            user = accounts.authenticate(db(), name, password, request.remote_addr or "-")
        except accounts.LockedOut as exc:
            error = gettext("Too many failed sign-ins. Try again in %(n)s minutes.",
                            n=exc.retry_after // 60 + 1)
            return render_template("login.html", error=error), 429
        if user is None:
            error = gettext("Wrong user name or password.")
        else:
            _start_session(user)
            return redirect(safe_next(request.args.get("next"), url_for("dashboard.index")))
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
@public
def logout():
    lang = session.get("lang")
    sessions.end(db(), session.get("sid"))   # this cookie, and every copy of it, is dead
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


@bp.route("/lang/<code>")
@public
def set_lang(code: str):
    if code not in LANGUAGES:
        abort(404)
    session["lang"] = code
    return redirect(safe_next(request.args.get("next"), url_for("dashboard.index")))


@bp.route("/users")
@roles_required("admin")
def users():
    return render_template("users.html", users=accounts.list_users(db()),
                           groups=backend().groups(), roles=accounts.ROLES)


@bp.route("/users", methods=["POST"])
@roles_required("admin")
def create_user():
    name = (request.form.get("name") or "").strip()
    role = request.form.get("role") or ""
    groups = accounts.parse_groups(" ".join(request.form.getlist("groups")))
    try:
        user = accounts.create_user(db(), name, request.form.get("password") or "", role, groups)
    except AccountError as exc:
        flash(translated(exc), "error")
        return redirect(url_for("auth.users"))
    log_change("account.create", target=user.name,
               diff=audit.value_diff(None, {"name": user.name, "role": role,
                                            "groups": list(groups)}),
               reason=form_reason())
    flash(gettext("Account %(name)s created.", name=user.name), "ok")
    return redirect(url_for("auth.users"))


@bp.route("/users/<int:user_id>", methods=["POST"])
@roles_required("admin")
def update_user(user_id: int):
    target = accounts.get_user(db(), user_id)
    if target is None:
        abort(404)
    role = request.form.get("role") or target.role
    groups = accounts.parse_groups(" ".join(request.form.getlist("groups")))
    disabled = request.form.get("disabled") == "1"
    password = request.form.get("password") or None
    demoting = target.is_admin and (role != "admin" or disabled)
    if demoting and accounts.active_admins(db()) <= 1:
        flash(gettext("The last admin cannot be removed."), "error")
        return redirect(url_for("auth.users"))
    before = {"role": target.role, "groups": list(target.groups), "disabled": target.disabled}
    after = {"role": role, "groups": list(groups), "disabled": disabled}
    try:
        accounts.update_user(db(), user_id, role=role, groups=groups, disabled=disabled,
                             password=password)
    except AccountError as exc:
        flash(translated(exc), "error")
        return redirect(url_for("auth.users"))
    if before != after or password:
        # New rights or none: the account signs in again (the admin's own session too,
        # when they changed themselves).
        sessions.end_user(db(), user_id)
    if password:
        after["password"] = "changed"
    log_change("account.update", target=target.name, diff=audit.value_diff(before, after),
               reason=form_reason())
    flash(gettext("Account %(name)s saved.", name=target.name), "ok")
    return redirect(url_for("auth.users"))


@bp.route("/account/password", methods=["GET", "POST"])
@roles_required(*ALL_ROLES)
def password():
    error = None
    if request.method == "POST":
        user = g.user
        current = request.form.get("current") or ""
        new = request.form.get("password") or ""
        try:
            ok = accounts.authenticate(db(), user.name, current, request.remote_addr or "-")
        except accounts.LockedOut:
            ok = None
        if ok is None:
            error = gettext("The current password is wrong.")
        elif new != (request.form.get("password2") or ""):
            error = gettext("The two passwords differ.")
        else:
            try:
                accounts.update_user(db(), user.id, password=new)
            except AccountError as exc:
                error = translated(exc)
            else:
                # every other sign-in of this account ends; this one stays
                sessions.end_user(db(), user.id, keep=session.get("sid"))
                log_change("account.password", target=user.name)
                flash(gettext("Password changed."), "ok")
                return redirect(url_for("dashboard.index"))
    return render_template("password.html", error=error), (400 if error else 200)
