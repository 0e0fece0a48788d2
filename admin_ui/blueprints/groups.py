"""Groups (age tiers): the policy files under policies/, edited safely.

Every edit is validated by the daemon's own loader on a temp copy of the whole
policy directory before anything is written; then the file is replaced atomically
(previous version kept as .prev) and the daemon reloads. A refused edit shows the
loader's message (file, line, key) and writes nothing.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from admin_ui import audit, policy_edit
from admin_ui.blueprints.overrides import _flash_reload
from admin_ui.errors import AdminError, translated
from admin_ui.security import roles_required
from admin_ui.web import backend, form_reason, group_label, lang, log_change
from filterd.errors import ConfigError, FilterdError
from filterd.words.messages import render_error

bp = Blueprint("groups", __name__)


@bp.route("/groups")
@roles_required("admin", "viewer")
def index():
    be = backend()
    error = None
    try:
        be.engine()
    except FilterdError as exc:
        error = str(exc)
    return render_template("groups.html", groups=be.groups(include_abstract=True),
                           files=[p.name for p in be.policy_files()], error=error)


@bp.route("/groups/<gid>")
@roles_required("admin", "viewer")
def edit(gid: str):
    be = backend()
    try:
        form = policy_edit.group_form(be, gid)
    except AdminError as exc:
        flash(translated(exc), "error")
        return redirect(url_for("groups.index"))
    return render_template("group_edit.html", gid=gid, form=form, categories=be.categories(),
                           error=None, fields={}, levels=policy_edit.LEVELS)


_FIELDS = ("label_vi", "label_en", "allow", "deny", "clients", "safe_search", "youtube",
           "block_mode", "block", "unblock")


def _problems(exc: ConfigError, gid: str) -> tuple[str, dict[str, list[str]]]:
    """Every problem the loader found, in the page's language: those of this group's
    fields beside the field, the rest (another file, another group) in the box on top."""
    fields: dict[str, list[str]] = {}
    general = []
    for e in getattr(exc, "errors", None) or [exc]:
        text = render_error(e, lang())
        key = (e.key or "").split(".")
        if len(key) >= 3 and key[:2] == ["groups", gid] and key[2] in _FIELDS:
            fields.setdefault(key[2], []).append(text)
        else:
            general.append(text)
    if not general:
        general.append(gettext("Nothing was saved: correct the fields marked below."))
    return "\n".join(general), fields


@bp.route("/groups/<gid>", methods=["POST"])
@roles_required("admin")
def save(gid: str):
    be = backend()
    reason = form_reason()
    try:
        form = policy_edit.group_form(be, gid)
    except AdminError as exc:
        flash(translated(exc), "error")
        return redirect(url_for("groups.index"))
    submitted = policy_edit.form_from_request(request.form, form)
    error = None
    fields: dict[str, list[str]] = {}
    if not reason:
        error = gettext("Type a reason.")
        fields["reason"] = [error]
    else:
        try:
            fname, before, after = policy_edit.apply_form(be, gid, submitted)
            if before == after:
                flash(gettext("Nothing changed."), "ok")
                return redirect(url_for("groups.edit", gid=gid))
            be.write_policies({fname: after})
        except ConfigError as exc:
            error, fields = _problems(exc, gid)
        except AdminError as exc:
            error = translated(exc)
    if error:
        every = [error, *(t for texts in fields.values() for t in texts)]
        log_change("policy.edit", target=gid, reason=reason,
                   outcome="refused: " + "\n".join(dict.fromkeys(every)))
        return render_template("group_edit.html", gid=gid, form=submitted,
                               categories=be.categories(), error=error, fields=fields,
                               levels=policy_edit.LEVELS), 400
    result = be.reload()
    log_change("policy.edit", target=gid, diff=audit.text_diff(before, after, fname), reason=reason,
               outcome="ok" if result.ok else f"reload: {result.message}")
    flash(gettext("Group %(group)s saved.", group=group_label(gid)), "ok")
    _flash_reload(result)
    return redirect(url_for("groups.edit", gid=gid))


@bp.route("/policies/<fname>")
@roles_required("admin", "viewer")
def raw(fname: str):
    be = backend()
    try:
        path = be.policy_path(fname)
    except AdminError:
        abort(404)
    if not path.is_file():
        abort(404)
    return render_template("policy_raw.html", fname=fname, text=path.read_text(encoding="utf-8"),
                           error=None)


@bp.route("/policies/<fname>", methods=["POST"])
@roles_required("admin")
def raw_save(fname: str):
    be = backend()
    try:
        path = be.policy_path(fname)
    except AdminError:
        abort(404)
    if not path.is_file():
        abort(404)
    text = (request.form.get("text") or "").replace("\r\n", "\n")
    reason = form_reason()
    before = path.read_text(encoding="utf-8")
    error = None
    if not reason:
        error = gettext("Type a reason.")
    elif text == before:
        flash(gettext("Nothing changed."), "ok")
        return redirect(url_for("groups.raw", fname=fname))
    else:
        try:
            be.write_policies({fname: text})
        except ConfigError as exc:
            error = str(exc)
    if error:
        log_change("policy.edit", target=fname, reason=reason, outcome=f"refused: {error}")
        return render_template("policy_raw.html", fname=fname, text=text, error=error), 400
    result = be.reload()
    log_change("policy.edit", target=fname, diff=audit.text_diff(before, text, fname),
               reason=reason,
               outcome="ok" if result.ok else f"reload: {result.message}")
    flash(gettext("%(file)s saved.", file=fname), "ok")
    _flash_reload(result)
    return redirect(url_for("groups.raw", fname=fname))
