"""'Why was this blocked?': the very Decision a student of the group gets now."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, render_template, request
from flask_babel import gettext

from admin_ui.errors import translated
from admin_ui.security import ALL_ROLES, roles_required
from admin_ui.web import backend, lang
from filterd.errors import FilterdError


def site_name(text: str) -> str:
    """The host name in what a teacher typed: a name, a URL, or a URL without scheme."""
    text = (text or "").strip()
    if not text:
        return ""
    host = urlsplit(text if "//" in text else "//" + text).hostname or ""
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


bp = Blueprint("why", __name__)


@bp.route("/why")
@roles_required(*ALL_ROLES)
def index():
    groups = backend().groups()
    site = request.args.get("site", "")
    group = request.args.get("group", "")
    decision = None
    error = None
    name = site_name(site)
    if site and not name:
        error = gettext("Type a site name such as example.com or a full address.")
    elif name and group:
        try:
            decision = backend().decide(name, group)
        except FilterdError as exc:
            error = translated(exc)
    text = backend().explain(decision, lang()) if decision is not None else None
    return render_template("why.html", groups=groups, site=site, group=group, name=name,
                           decision=decision, text=text, error=error)
