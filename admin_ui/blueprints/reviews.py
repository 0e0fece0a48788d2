"""The review queue fed by the block page (table `reviews`, owned by the HTTP part).

Approve: an allow entry for the group in its policy file (validated, written
atomically, reloaded), or, when an expiry is chosen, an expiring override.
Decline: with a note. Teachers see the requests of their own groups, decline them with a
note, or answer one with a temporary override (which marks it approved); only admins
write allow entries into the policy.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext

from admin_ui import audit, policy_edit
from admin_ui.blueprints.overrides import _flash_reload, active
from admin_ui.blueprints.why import site_name
from admin_ui.errors import translated
from admin_ui.security import roles_required
from admin_ui.web import backend, db, form_reason, group_label, log_change, page_args
from filterd.errors import FilterdError
from filterd.policy.sites import site_for
from filterd.state.db import table_exists
from filterd.state.reviews import count_reviews, decide_review, get_review, list_reviews

bp = Blueprint("reviews", __name__)

STATUSES = ("open", "approved", "declined")


def _get(review_id: int) -> dict:
    review = get_review(db(), review_id)
    if review is None:
        abort(404)
    return review


@bp.route("/reviews")
@roles_required("admin", "teacher")
def index():
    status = request.args.get("status", "open")
    if status not in STATUSES:
        status = "open"
    page, size = page_args()
    present = table_exists(db(), "reviews")
    groups = None if g.user.is_admin else tuple(g.user.groups)
    total = count_reviews(db(), status, groups)
    rows = list_reviews(db(), status, groups, limit=size, offset=(page - 1) * size)
    if not g.user.is_admin:
        for r in rows:
            r.pop("client_ip", None)  # client identities are for admins only
    pages = max(1, (total + size - 1) // size)
    return render_template("reviews.html", rows=rows, status=status, statuses=STATUSES,
                           page=page, pages=pages, total=total, present=present,
                           groups=backend().groups(), categories=backend().categories())


def _decide(review: dict, status: str, note: str) -> None:
    decide_review(db(), review["id"], status, by=g.user.name, note=note)


@bp.route("/reviews/<int:review_id>/approve", methods=["POST"])
@roles_required("admin")
def approve(review_id: int):
    review = _get(review_id)
    if review["status"] != "open":
        flash(gettext("This request was already decided."), "error")
        return redirect(url_for("reviews.index"))
    name = site_name(review.get("name") or "")
    with contextlib.suppress(ValueError):   # the site opens, not only the host met
        name = site_for(name).root
    group = review.get("group_id") or ""
    note = form_reason()
    try:
        days = int(request.form.get("days") or "0")
    except ValueError:
        days = 0
    try:
        if days > 0:
            now = datetime.now(UTC)
            item = {"id": secrets.token_hex(6), "group": group, "domain": name,
                    "expires_at": (now + timedelta(days=min(days, 365))).isoformat(
                        timespec="seconds"),
                    "created_by": g.user.name, "created_at": now.isoformat(timespec="seconds"),
                    "reason": note or f"review {review_id}"}
            with backend().overrides_lock():
                backend().write_overrides([*active(backend().read_overrides(), now), item])
            diff = audit.value_diff(None, item)
        else:
            fname, before, after = policy_edit.add_allow(backend(), group, name)
            backend().write_policies({fname: after})
            diff = audit.text_diff(before, after, fname)
    except FilterdError as exc:
        flash(translated(exc), "error")
        log_change("review.approve", target=f"#{review_id} {group} {name}", reason=note,
                   outcome=f"refused: {exc}")
        return redirect(url_for("reviews.index"))
    _decide(review, "approved", note)
    result = backend().reload()
    log_change("review.approve", target=f"#{review_id} {group} {name}", diff=diff, reason=note,
               outcome="ok" if result.ok else f"reload: {result.message}")
    flash(gettext("Approved: %(site)s is allowed for %(group)s.", site=name,
                  group=group_label(group)), "ok")
    _flash_reload(result)
    return redirect(url_for("reviews.index"))


def for_teacher(review_id: int) -> dict:
    """The review, when the signed-in user may decide it (admins: any; teachers: their groups)."""
    review = _get(review_id)
    if not g.user.can_act_for(review.get("group_id") or ""):
        abort(403)
    return review


def mark_approved(review: dict, note: str) -> None:
    """Approved by an override made from the request (the override form says which)."""
    if review["status"] == "open":
        _decide(review, "approved", note)


@bp.route("/reviews/<int:review_id>/decline", methods=["POST"])
@roles_required("admin", "teacher")
def decline(review_id: int):
    review = for_teacher(review_id)
    if review["status"] != "open":
        flash(gettext("This request was already decided."), "error")
        return redirect(url_for("reviews.index"))
    note = form_reason()
    if not note:
        flash(gettext("Type a note for the person who asked."), "error")
        return redirect(url_for("reviews.index"))
    _decide(review, "declined", note)
    log_change("review.decline",
               target=f"#{review_id} {review.get('group_id')} {review.get('name')}",
               reason=note)
    flash(gettext("Request declined."), "ok")
    return redirect(url_for("reviews.index"))
