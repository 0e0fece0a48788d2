"""Alerts: every alert the daemon raised, to whom it went and whether it arrived; staff mark
one handled with a note (kept in the audit log). Recipients (the school's staff) are set
here, each value validated before anything is stored.

Teachers see the alerts of their own groups, without the device's address; admins see
everything. The tables and queries are filterd.state.alerts'; the daemon delivers.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext

from admin_ui.errors import N_
from admin_ui.security import roles_required
from admin_ui.web import backend, db, lang, log_change, page_args
from filterd.alerts.recipients import Recipient, RecipientError
from filterd.alerts.render import Words, alert_dict
from filterd.policy.alert_rules import NO_ALERTS, ROLES
from filterd.state import alerts as store

bp = Blueprint("alerts", __name__)

VIEWS = ("open", "handled", "all")
# The recipient checks' messages (filterd.alerts.recipients), for the translation catalogs.
RECIPIENT_MESSAGES = (
    N_("A name is needed (up to 120 characters)."), N_("Choose one of the roles."),
    N_("This is not an e-mail address."), N_("A webhook is an https:// address."),
    N_("Give an e-mail address or a webhook."), N_("Unknown group."),
    N_("Quiet hours look like 21:00-06:30."))
MSG_STATES = ("pending", "sending", "sent", "failed")


def _db() -> Any:
    d = db()
    store.init_db(d)
    return d


def _words() -> Words:
    """The policy's words (rules, groups, categories) in the page's language."""
    b = backend()
    config = b.config
    try:
        engine = b.engine()
    except Exception:  # a policy that does not build: ids instead of rule words, page works
        engine = None
    policy = getattr(engine, "policy", None)
    rules = getattr(policy, "alerts", NO_ALERTS) if policy is not None else NO_ALERTS
    code = lang()
    groups = {grp.id: grp.label(code) for grp in b.groups()}
    cats = {cid: str(c.get(code) or c.get("vi") or cid) for cid, c in b.categories().items()}
    catalog_words = None
    if engine is not None and getattr(engine, "policy", None) is not None:
        from filterd.words.explain import Words as CatalogWords

        catalog_words = CatalogWords.for_engine(engine)
    return Words(config.school_name, config.school_id, config.timezone, "", rules, groups,
                 cats, lang=code, words=catalog_words)


def _visible(alert: dict[str, Any]) -> bool:
    user = g.user
    if user.role != "teacher":
        return True
    return alert["kind"] == store.SAFEGUARDING and alert.get("group_id") in user.groups


def _shown(alert: dict[str, Any], words: Words) -> dict[str, Any]:
    d = alert_dict(alert, words)
    d.update(handled_ts=alert["handled_ts"], handled_by=alert["handled_by"],
             handled_note=alert["handled_note"], state=alert["state"],
             client_ip=alert.get("client_ip"), client_mac=alert.get("client_mac"),
             first_ts=alert["first_ts"], last_ts=alert["last_ts"])
    if d["kind"] == "safeguarding":
        d["events_url"] = url_for("events.index", client=alert["client_ip"] or "",
                                  since=words.local_input(alert["first_ts"]),
                                  until=words.local_input(alert["last_ts"] + 60))
    if g.user.role == "teacher":   # client identities are for admins only
        d.pop("client_ip")
        d.pop("client_mac")
        d.pop("events_url", None)
        if not words.rules.device_name(alert.get("client_ip"), alert.get("client_mac")):
            d["device"] = gettext("an unnamed device")
    return d


def _mask(address: str, channel: str) -> str:
    """Webhook URLs often carry a token (Telegram bots): show the host only."""
    if channel != "webhook":
        return address
    from urllib.parse import urlsplit

    return urlsplit(address).hostname or "?"


@bp.route("/alerts")
@roles_required("admin", "teacher", "viewer")
def index():
    view = request.args.get("view", "open")
    if view not in VIEWS:
        view = "open"
    handled = {"open": False, "handled": True, "all": None}[view]
    page, size = page_args()
    d = _db()
    words = _words()
    if g.user.role == "teacher":   # few rows: filter in Python, the query stays one
        rows = [a for a in store.list_alerts(d, handled=handled, limit=2000) if _visible(a)]
        total = len(rows)
        rows = rows[(page - 1) * size:page * size]
    else:
        total = store.count_alerts(d, handled=handled)
        rows = store.list_alerts(d, handled=handled, limit=size, offset=(page - 1) * size)
    msgs = store.messages_for(d, [a["id"] for a in rows])
    shown = [_shown(a, words) for a in rows]
    pages = max(1, (total + size - 1) // size)
    return render_template("alerts.html", alerts=shown, messages=msgs, view=view,
                           views=VIEWS, page=page, pages=pages, total=total, mask=_mask,
                           recipients_count=len(store.recipients(d)))


@bp.route("/alerts/<int:alert_id>")
@roles_required("admin", "teacher", "viewer")
def show(alert_id: int):
    d = _db()
    alert = store.get_alert(d, alert_id)
    if alert is None or alert["state"] not in ("due", "queued") or not _visible(alert):
        abort(404)
    words = _words()
    return render_template("alerts.html", alerts=[_shown(alert, words)],
                           messages=store.messages_for(d, [alert_id]), view="one", views=VIEWS,
                           page=1, pages=1, total=1, mask=_mask, recipients_count=None)


@bp.route("/alerts/<int:alert_id>/handle", methods=["POST"])
@roles_required("admin", "teacher")
def handle(alert_id: int):
    d = _db()
    alert = store.get_alert(d, alert_id)
    if alert is None or not _visible(alert):
        abort(404)
    note = (request.form.get("note") or "").strip()[:1000]
    if not note:
        flash(gettext("Write what was done (the note is kept in the audit log)."), "error")
        return redirect(url_for("alerts.show", alert_id=alert_id))
    if alert["handled_ts"] is not None:
        flash(gettext("This alert was already marked handled."), "error")
        return redirect(url_for("alerts.show", alert_id=alert_id))
    store.mark_handled(d, alert_id, g.user.name, note)
    log_change("alert.handle", target=f"alert {alert_id} ({alert['rule']})", reason=note)
    flash(gettext("Marked handled."), "ok")
    return redirect(url_for("alerts.index"))


# -- recipients ---------------------------------------------------------------------------

def _form_recipient(rid: int | None) -> Recipient:
    f = request.form
    groups = tuple(x for x in f.getlist("groups") if x)
    known = {grp.id for grp in backend().groups()}
    if any(x not in known for x in groups):
        raise RecipientError("groups", "Unknown group.")
    return Recipient(name=(f.get("name") or "").strip(), role=f.get("role") or "",
                     email=(f.get("email") or "").strip(),
                     webhook=(f.get("webhook") or "").strip(), groups=groups,
                     quiet=(f.get("quiet") or "").strip(), enabled=f.get("enabled") == "1",
                     id=rid)


def _recipients_page(error: RecipientError | None = None, form: dict | None = None,
                     edit: dict | None = None, status: int = 200):
    d = _db()
    rows = store.recipients(d)
    return render_template(
        "alert_recipients.html", rows=rows, roles=ROLES,
        groups=backend().groups(), error=error,
        error_text=gettext(error.message) if error else "", form=form or edit or {},
        editing=edit, mask=_mask), status


@bp.route("/alerts/recipients")
@roles_required("admin")
def recipients():
    edit = None
    if request.args.get("edit"):
        try:
            edit = store.recipient(_db(), int(request.args["edit"]))
        except ValueError:
            edit = None
        if edit is None:
            abort(404)
        edit = {**edit, "groups": [x for x in edit["groups"].split(",") if x]}
    return _recipients_page(edit=edit)


@bp.route("/alerts/recipients", methods=["POST"])
@roles_required("admin")
def save_recipient():
    rid_text = request.form.get("id") or ""
    rid = int(rid_text) if rid_text.isdigit() else None
    d = _db()
    before = store.recipient(d, rid) if rid is not None else None
    if rid is not None and before is None:
        abort(404)
    try:
        r = _form_recipient(rid)
    except RecipientError as exc:
        form = {k: request.form.get(k, "") for k in ("name", "role", "email", "webhook",
                                                     "quiet", "id")}
        form["groups"] = request.form.getlist("groups")
        form["enabled"] = 1 if request.form.get("enabled") == "1" else 0
        return _recipients_page(error=exc, form=form, edit=form if rid else None, status=400)
    values = r.to_values()
    new_id = store.save_recipient(d, values, rid)
    from admin_ui import audit

    old = {k: before[k] for k in values} if before else None
    log_change("alert.recipient.update" if rid else "alert.recipient.create",
               target=f"{values['name']} ({values['role']})",
               diff=audit.value_diff(old, values))
    flash(gettext("Recipient saved."), "ok")
    return redirect(url_for("alerts.recipients", _anchor=f"r{new_id}"))


@bp.route("/alerts/recipients/<int:rid>/delete", methods=["POST"])
@roles_required("admin")
def delete_recipient(rid: int):
    d = _db()
    before = store.recipient(d, rid)
    if before is None:
        abort(404)
    store.delete_recipient(d, rid)
    from admin_ui import audit

    log_change("alert.recipient.delete", target=f"{before['name']} ({before['role']})",
               diff=audit.value_diff({k: before[k] for k in store.RECIPIENT_FIELDS}, None))
    flash(gettext("Recipient removed."), "ok")
    return redirect(url_for("alerts.recipients"))


@bp.route("/alerts/test", methods=["POST"])
@roles_required("admin")
def send_test():
    """A test message to every recipient: the running filter sends it within seconds."""
    import time

    d = _db()
    people = store.recipients(d, enabled_only=True)
    if not people:
        flash(gettext("Nobody yet: alerts are recorded but reach no one."), "error")
        return redirect(url_for("alerts.recipients"))
    aid = store.raise_health(d, "test", "Thử gửi cảnh báo từ trang quản trị", now=time.time(),
                             window=1.0)
    log_change("alerts.test", target=f"alert {aid}")
    flash(gettext("A test alert is on its way to %(n)s recipient(s); see Alerts for whether "
                  "it arrived.", n=len(people)), "ok")
    return redirect(url_for("alerts.index", view="all"))

