"""Reports of harmful sites from the school's report form, and the office's feeds.

The IT staff see every report (never who made it), block the site for the whole
school at once (a school-wide deny, applied with a reload), dismiss it, or send
it to the office; with `sync.forward_reports` every report goes at the next sync.
The feeds part shows each signed list the office sends, its version, its age and
the office's notices.
"""

from __future__ import annotations

import time

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext

from admin_ui.blueprints.overrides import _flash_reload
from admin_ui.security import roles_required
from admin_ui.web import backend, log_change
from filterd.errors import FilterdError

bp = Blueprint("site_reports", __name__)

def _store():
    from filterd.state.site_reports import SiteReportStore

    return SiteReportStore(backend().data_dir)


@bp.route("/site-reports")
@roles_required("admin")
def index():
    store = _store()
    try:
        rows = store.all()
    finally:
        store.close()
    return render_template("site_reports.html", rows=rows,
                           automatic=bool(getattr(backend().config.sync, "forward_reports",
                                                  False)),
                           feeds=_feeds(), now=time.time())


def _feeds() -> dict:
    """Each feed's status on this appliance, and the office's notices (empty if not enrolled)."""
    from pathlib import Path

    from filterd.sync.feedpull import FeedStore, OfficeKeyError, read_office_key

    cfg = backend().config
    if cfg.sync.office_key_file is None:
        return {"enrolled": False, "statuses": {}, "notices": ()}
    try:
        store = FeedStore(cfg.feeds_dir, read_office_key(Path(cfg.sync.office_key_file)))
    except OfficeKeyError:
        return {"enrolled": False, "statuses": {}, "notices": ()}
    notices = ()
    try:
        feed = store.current("notices")
        notices = feed.notices if feed is not None else ()
    except FilterdError:
        notices = ()
    return {"enrolled": True, "statuses": store.statuses(), "notices": notices}


def _decide(rid: str, status: str, action: str):
    store = _store()
    try:
        r = store.decide(rid, status, by=g.user.name)
    except FilterdError:
        abort(404)
    finally:
        store.close()
    return r


@bp.route("/site-reports/<rid>/block", methods=["POST"])
@roles_required("admin")
def block(rid: str):
    r = _decide(rid, "blocked", "block")
    result = backend().reload()
    log_change("site_report.block", target=r.site,
               outcome="ok" if result.ok else f"reload: {result.message}")
    flash(gettext("%(site)s is blocked for the whole school.", site=r.site), "ok")
    _flash_reload(result)
    return redirect(url_for("site_reports.index"))


@bp.route("/site-reports/<rid>/dismiss", methods=["POST"])
@roles_required("admin")
def dismiss(rid: str):
    r = _decide(rid, "dismissed", "dismiss")
    log_change("site_report.dismiss", target=r.site)
    flash(gettext("Report dismissed."), "ok")
    return redirect(url_for("site_reports.index"))


@bp.route("/site-reports/<rid>/forward", methods=["POST"])
@roles_required("admin")
def forward(rid: str):
    store = _store()
    try:
        store.request_forward(rid)
        site = store.get(rid).site  # type: ignore[union-attr]
    except FilterdError:
        abort(404)
    finally:
        store.close()
    log_change("site_report.forward", target=site)
    flash(gettext("%(site)s will be sent to the education office at the next sync.",
                  site=site), "ok")
    return redirect(url_for("site_reports.index"))
