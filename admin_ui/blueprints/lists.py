"""Lists: sources, counts, last update, errors; "update now" runs `filterd lists update`."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext

from admin_ui.blueprints import control
from admin_ui.security import roles_required
from admin_ui.web import backend, log_change

bp = Blueprint("lists", __name__)


@bp.route("/lists")
@roles_required("admin", "viewer")
def index():
    return render_template("lists.html", status=backend().lists_status(),
                           control=control.state())


@bp.route("/lists/update", methods=["POST"])
@roles_required("admin")
def update():
    if backend().start_lists_update():
        log_change("lists.update", target="lists")
        flash(gettext("List update started. Reload this page to see its progress."), "ok")
    else:
        flash(gettext("A list update is already running."), "error")
    return redirect(url_for("lists.index"))
