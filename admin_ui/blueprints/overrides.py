"""Temporary overrides: a teacher allows a site for their group for N minutes (capped by the admin).

Written to `<data_dir>/overrides.json` atomically, then the daemon reloads. The engine
ignores expired entries by itself, and the protected list stays above every override.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext

from admin_ui import audit
from admin_ui.blueprints.why import site_name
from admin_ui.errors import translated
from admin_ui.security import roles_required
from admin_ui.web import backend, db, form_reason, group_label, lang, log_change, visible_groups
from filterd.errors import FilterdError
from filterd.policy.sites import site_for
from filterd.state.reviews import get_review

bp = Blueprint("overrides", __name__)


def _expires(item: dict) -> datetime:
    return datetime.fromisoformat(str(item["expires_at"]).replace("Z", "+00:00"))


def active(items: list[dict], now: datetime) -> list[dict]:
    return [o for o in items if _expires(o) > now]


@bp.route("/overrides")
@roles_required("admin", "teacher")
def index():
    now = datetime.now(UTC)
    try:
        items = active(backend().read_overrides(), now)
    except FilterdError as exc:
        items = []
        flash(translated(exc), "error")
    if not g.user.is_admin:
        items = [o for o in items if o.get("group") in g.user.groups]
    for o in items:
        o["minutes_left"] = max(0, int((_expires(o) - now).total_seconds() // 60) + 1)
        o["ends"] = _expires(o).timestamp()
        o["site"] = _site(o.get("domain") or "")
    typed = request.args.get("site", "")
    preview, preview_error = None, None
    if typed:   # step 2: what will open, before anything is saved
        try:
            preview = site_for(site_name(typed))
        except ValueError:
            preview_error = gettext("Type a site name such as example.com or a full address.")
    return render_template("overrides.html", items=items, groups=visible_groups(),
                           all_groups=backend().groups(), cap=backend().max_override_minutes,
                           preview=preview, preview_error=preview_error, typed=typed,
                           chosen_group=request.args.get("group", ""))


def _site(domain: str):  # type: ignore[no-untyped-def]
    try:
        return site_for(domain)
    except ValueError:
        return None


@bp.route("/overrides", methods=["POST"])
@roles_required("admin", "teacher")
def create():
    group = request.form.get("group") or ""
    typed = site_name(request.form.get("site") or "")
    site = _site(typed) if typed else None
    name = site.root if site is not None else ""   # the site, not the host typed
    reason = form_reason()
    cap = backend().max_override_minutes
    try:
        minutes = int(request.form.get("minutes") or "0")
    except ValueError:
        minutes = 0
    if not g.user.can_act_for(group) or group not in {grp.id for grp in backend().groups()}:
        abort(403)
    problem = None
    if not name:
        problem = gettext("Type a site name such as example.com or a full address.")
    elif not 1 <= minutes <= cap:
        problem = gettext("Minutes must be between 1 and %(cap)s.", cap=cap)
    elif not reason:
        problem = gettext("Type a reason.")
    if problem is None:
        try:   # neither the name typed nor its site may be on the protected list
            if any(str(backend().decide(n, group).reason) == "protected"
                   for n in dict.fromkeys((typed, name))):
                problem = gettext(
                    "This site is on the protected list; no override can unblock it.")
        except FilterdError as exc:
            problem = translated(exc)
    if problem:
        log_change("override.refused", target=f"{group} {name}", reason=reason, outcome=problem)
        flash(problem, "error")
        return redirect(url_for("overrides.index"))
    now = datetime.now(UTC)
    item = {"id": secrets.token_hex(6), "group": group, "domain": name,
            "expires_at": (now + timedelta(minutes=minutes)).isoformat(timespec="seconds"),
            "created_by": g.user.name, "created_at": now.isoformat(timespec="seconds"),
            "reason": reason}
    review = _review_answered(group, typed)
    with backend().overrides_lock():
        backend().write_overrides([*active(backend().read_overrides(), now), item])
    result = backend().reload()
    log_change("override.create", target=f"{group} {name}", diff=audit.value_diff(None, item),
               reason=reason, outcome="ok" if result.ok else f"reload: {result.message}")
    if review is not None:
        from admin_ui.blueprints.reviews import mark_approved  # reviews imports this module

        mark_approved(review, gettext("Allowed for %(n)s minutes: %(reason)s", n=minutes,
                                      reason=reason))
        log_change("review.approve", target=f"#{review['id']} {group} {name}", reason=reason)
    flash(gettext("%(site)s is allowed for %(group)s for %(n)s minutes.",
                  site=site.label(lang()) if site else name, group=group_label(group),
                  n=minutes), "ok")
    _flash_reload(result)
    return redirect(url_for("overrides.index"))


def _review_answered(group: str, name: str) -> dict | None:
    """The open review request this override answers (sent from the review queue), if any.
    It must be for the same group (which the user may act for, checked above) and site."""
    rid = request.form.get("review") or ""
    if not rid.isdigit():
        return None
    review = get_review(db(), int(rid))
    if not review or review.get("group_id") != group or review.get("status") != "open" \
            or site_name(review.get("name") or "") != name:
        return None
    return review


@bp.route("/overrides/<oid>/revoke", methods=["POST"])
@roles_required("admin", "teacher")
def revoke(oid: str):
    now = datetime.now(UTC)
    with backend().overrides_lock():
        items = backend().read_overrides()
        found = next((o for o in items if o.get("id") == oid), None)
        if found is None:
            abort(404)
        if not (g.user.is_admin or (g.user.can_act_for(found.get("group", ""))
                                    and found.get("created_by") == g.user.name)):
            abort(403)
        if not form_reason():   # docs/admin.md: every removal says why
            flash(gettext("Type a reason."), "error")
            return redirect(url_for("overrides.index"))
        backend().write_overrides([o for o in active(items, now) if o.get("id") != oid])
    result = backend().reload()
    log_change("override.revoke", target=f"{found.get('group')} {found.get('domain')}",
               diff=audit.value_diff(found, None), reason=form_reason(),
               outcome="ok" if result.ok else f"reload: {result.message}")
    flash(gettext("Override removed."), "ok")
    _flash_reload(result)
    return redirect(url_for("overrides.index"))


def _flash_reload(result) -> None:  # type: ignore[no-untyped-def]
    from admin_ui.blueprints.control import flash_result

    flash_result(result)
