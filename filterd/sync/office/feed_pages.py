"""Office pages for what flows between the office and its schools.

- /feeds: each feed's latest version and age, which version every school fetched
  (and who is behind), forms to publish the next version or a notice.
- /site-reports: reports of harmful sites from every school, grouped by site with
  the number of schools; accepting adds the site to the deny feed.
"""

from __future__ import annotations

from datetime import UTC, datetime

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

from filterd.errors import FilterdError
from filterd.sync.feed import KINDS, Notice
from filterd.sync.office.auth import admin_required, login_required
from filterd.sync.office.feeds import FeedPublisher
from filterd.sync.office.i18n import translate
from filterd.sync.office.site_reports import SiteReportQueue

bp = Blueprint("feeds", __name__, template_folder="templates")

MAX_NAMES_FORM = 200_000

# Feed kinds and report states in words (English is the key, as in i18n.py).
FEED_WORDS = {"protected": "Protected list (illegal content)", "deny": "Deny additions",
              "allow": "Allow additions", "education": "Education allowlist additions",
              "notices": "Notices for IT staff"}
STATUS_WORDS = {"pending": "Waiting for a decision", "accepted": "Accepted",
                "rejected": "Rejected"}


@bp.app_context_processor
def _words() -> dict:
    return {"feed_label": lambda k: translate(FEED_WORDS.get(k, k), g.lang),
            "status_label": lambda s: translate(STATUS_WORDS.get(s, s), g.lang)}


def _office():
    return current_app.extensions["office"]


def _dir():
    from filterd.sync.office.api import _office_dir

    return _office_dir()


def _publisher() -> FeedPublisher:
    return FeedPublisher(_office()["storage"], _dir())


def _local(stamp: str | None) -> str:
    if not stamp:
        return "—"
    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return at.astimezone(_office()["tz"]).strftime("%d/%m/%Y %H:%M" if g.lang == "vi"
                                                   else "%Y-%m-%d %H:%M")


def category_words(cat: str) -> str:
    from filterd.words.explain import Words

    return Words().category(cat, g.lang) or translate("Other", g.lang)


@bp.get("/feeds")
@login_required
def index():
    p = _publisher()
    latest = {k: p.latest(k) for k in KINDS}
    pulls = p.pulls()
    schools = _office()["storage"].schools()
    rows = []
    for s in schools:
        got = pulls.get(s.id, {})
        behind = [k for k, pub in latest.items() if pub is not None
                  and got.get(k, (0, ""))[0] < pub.version]
        rows.append((s, {k: got.get(k) for k in KINDS}, behind))
    notices = p.notices()
    return render_template("office/feeds.html", title=translate("Feeds to schools", g.lang),
                           kinds=KINDS, latest=latest, rows=rows, local=_local,
                           notices=notices, key_id=p.key_id())


def _names(text: str) -> list[str]:
    out = []
    for line in text.splitlines()[:MAX_NAMES_FORM]:
        name = line.split("#", 1)[0].strip()
        if name:
            out.append(name)
    return out


@bp.post("/feeds/<kind>")
@admin_required
def publish(kind: str):
    if kind not in KINDS or kind == "notices":
        abort(404)
    action = request.form.get("action", "add")
    names = _names(request.form.get("names", ""))
    scope = (request.form.get("scope") or "").strip()[:200]
    p = _publisher()
    if action == "replace":
        return _publish(lambda: p.publish(kind, names, scope=scope))
    if action == "remove":
        return _publish(lambda: p.remove(kind, names, scope=scope))
    return _publish(lambda: p.add(kind, names, scope=scope))


def _publish(make):
    """Run one publish, say what became of it, back to the feeds page."""
    try:
        pub = make()
    except FilterdError as exc:
        flash(f"{translate('Not published', g.lang)}: {exc}", "error")
    else:
        flash(translate("Published version", g.lang) + f" {pub.version} ({pub.entries})", "ok")
    return redirect(url_for("feeds.index"))


@bp.post("/feeds/notices")
@admin_required
def notice():
    title = (request.form.get("title") or "").strip()[:200]
    body = (request.form.get("body") or "").strip()[:4000]
    if not title:
        flash(translate("A notice needs a title.", g.lang), "error")
        return redirect(url_for("feeds.index"))
    p = _publisher()
    latest = p.latest("notices")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = Notice(f"n{(latest.version + 1) if latest else 1}", title, body, now)
    return _publish(lambda: p.publish("notices", notices=[new, *p.notices()][:100]))


@bp.get("/site-reports")
@login_required
def site_reports():
    status = request.args.get("status", "pending")
    if status not in ("pending", "accepted", "rejected"):
        status = "pending"
    q = SiteReportQueue(_office()["storage"], _dir())
    return render_template("office/site_reports.html",
                           title=translate("Reports of harmful sites", g.lang),
                           groups=q.groups(status), status=status, local=_local,
                           words=category_words, admin=session.get("role") == "admin")


@bp.post("/site-reports/decide")
@admin_required
def decide():
    site = (request.form.get("site") or "").strip()[:253]
    status = request.form.get("status")
    if status not in ("accepted", "rejected") or not site:
        abort(400)
    try:
        n = SiteReportQueue(_office()["storage"], _dir()).decide(
            site, status, by=session.get("user") or "-")
    except FilterdError as exc:
        flash(str(exc), "error")
        return redirect(url_for("feeds.site_reports"))
    key = ("Accepted: added to the deny feed for every school." if status == "accepted"
           else "Rejected.")
    flash(f"{site}: {translate(key, g.lang)} ({n})", "ok")
    return redirect(url_for("feeds.site_reports"))
