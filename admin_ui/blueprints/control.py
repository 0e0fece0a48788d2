"""The filter's state as loaded: last reload outcome, files that differ on disk, restart.

Reload now and Restart go through the same control channel as `filterd reload` and
`filterd restart` (filterd.state.control): the page reports what the daemon recorded,
never a guess from a pid or the metrics.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext, lazy_gettext

from admin_ui.security import roles_required
from admin_ui.web import backend, form_reason, log_change, safe_next

bp = Blueprint("control", __name__)

# filterd.yaml keys as an IT person reads them (the key itself where no label is known).
SETTING_LABELS = {
    "school_id": lazy_gettext("School id"),
    "school_name": lazy_gettext("School name"),
    "timezone": lazy_gettext("Time zone"),
    "policy_dir": lazy_gettext("Policy folder"),
    "categories_file": lazy_gettext("Category list file"),
    "sources_file": lazy_gettext("List sources file"),
    "data_dir": lazy_gettext("Data folder"),
    "dns.listen": lazy_gettext("DNS listen addresses"),
    "dns.upstreams": lazy_gettext("Upstream resolvers"),
    "dns.workers": lazy_gettext("DNS worker processes"),
    "http.block_page_listen": lazy_gettext("Block page address"),
    "http.proxy_listen": lazy_gettext("Proxy address"),
    "http.mode": lazy_gettext("Proxy mode"),
    "http.intercept_groups": lazy_gettext("Groups whose HTTPS is inspected"),
    "http.staff_groups": lazy_gettext("Staff groups"),
    "admin.listen": lazy_gettext("Admin page address"),
    "metrics.listen": lazy_gettext("Metrics address"),
    "events.retention_days": lazy_gettext("Event log retention"),
    "sync.office_url": lazy_gettext("Education office URL"),
    "admin.max_override_minutes": lazy_gettext("Longest teacher override"),
}


def setting_label(key: str) -> str:
    label = SETTING_LABELS.get(key)
    return f"{label} ({key})" if label else key


def state() -> dict[str, Any]:
    """What the dashboard and settings page show about the running filter."""
    be = backend()
    outcome = be.last_outcome()
    pid = be.daemon_pid()
    running = pid is not None and outcome is not None and outcome.pid == pid
    stale = be.stale_files(outcome) if running else []
    return {
        "pid": pid,
        "outcome": outcome if outcome is not None and (running or pid is None) else None,
        "refused": bool(outcome and outcome.status != "ok"),
        "disk_error": be.disk_error(),
        "stale": stale,
        "pending_restart": [setting_label(k) for k in (outcome.pending_restart if outcome
                                                      and running else ())],
    }


def flash_result(result: Any) -> None:
    """Tell the user what the daemon did with a change (the daemon's own record)."""
    if result.ok:
        flash(gettext("The filter reloaded (pid %(pid)s).", pid=result.pid), "ok")
        o = result.outcome
        if o is not None and o.needs_restart:
            flash(gettext("These settings take effect only after a restart: %(keys)s",
                          keys=", ".join(setting_label(k) for k in o.needs_restart)), "error")
        return
    why = gettext(result.msgid, **dict(result.params))
    flash(gettext("The filter did not reload: %(message)s", message=why), "error")


@bp.route("/control/reload", methods=["POST"])
@roles_required("admin")
def reload():
    result = backend().reload()
    log_change("filter.reload", reason=form_reason(),
               outcome="ok" if result.ok else f"{result.status}: {result.message}")
    flash_result(result)
    return redirect(safe_next(request.form.get("next"), url_for("dashboard.index")))


@bp.route("/control/restart", methods=["POST"])
@roles_required("admin")
def restart():
    result = backend().restart()
    log_change("filter.restart", reason=form_reason(),
               outcome="ok" if result.ok else f"{result.status}: {result.message}")
    if result.ok:
        flash(gettext("The filter restarted (pid %(pid)s).", pid=result.pid), "ok")
    else:
        why = gettext(result.msgid, **dict(result.params))
        flash(gettext("The filter did not restart: %(message)s", message=why), "error")
    return redirect(safe_next(request.form.get("next"), url_for("dashboard.index")))
