"""Registers the blueprints, error pages and template helpers."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask, g, render_template, request
from flask_babel import format_decimal, gettext

from admin_ui.blueprints import (
    alerts,
    audit_log,
    auth,
    control,
    dashboard,
    events,
    groups,
    lists,
    overrides,
    reviews,
    settings,
    site_reports,
    why,
)
from admin_ui.web import backend, lang
from filterd import words


def _words():  # type: ignore[no-untyped-def]
    """The running policy's words, once per request."""
    if "words" not in g:
        g.words = backend().words()
    return g.words


def register(app: Flask) -> None:
    for bp in (auth.bp, dashboard.bp, groups.bp, why.bp, reviews.bp, overrides.bp, events.bp,
               lists.bp, settings.bp, audit_log.bp, alerts.bp, control.bp,
               site_reports.bp):
        app.register_blueprint(bp)

    @app.context_processor
    def _ctx() -> dict:
        return {"user": g.get("user"), "lang": lang(), "endpoint": request.endpoint or ""}

    @app.template_filter("ts")
    def _ts(value: float | datetime | None) -> str:
        """A moment in the school's zone, in the one format of the page's language."""
        if value in (None, ""):
            return ""
        return words.format_datetime(value if isinstance(value, datetime) else float(value),
                                     lang(), _words().tz)

    @app.template_filter("term")
    def _term(code: object, kind: str) -> str:
        """`{{ r.action|term('audit') }}`: the catalog's word for a code."""
        return words.term(kind, code, lang())

    @app.template_filter("category")
    def _category(cid: str | None) -> str:
        return _words().category(cid, lang())

    @app.template_filter("group")
    def _group(gid: str | None) -> str:
        return _words().group(gid, lang())

    app.jinja_env.globals.update(words=_words)

    @app.template_filter("isots")
    def _isots(value: str | None) -> str:
        """An ISO 8601 UTC stamp ("...Z") in the school's zone and the reader's format."""
        if not value:
            return "—"
        try:
            at = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return value
        return words.format_datetime(at, lang(), _words().tz)

    @app.template_filter("num")
    def _num(value: float | int | None) -> str:
        return "" if value is None else format_decimal(value)

    @app.template_filter("outcome_word")
    def _outcome_word(status: str) -> str:
        words = {"ok": gettext("accepted"), "refused": gettext("refused"),
                 "failed": gettext("failed")}
        return words.get(status, status)

    for code in (400, 403, 404, 405, 413):
        app.register_error_handler(code, _error_page)


def _error_page(exc):  # type: ignore[no-untyped-def]
    code = getattr(exc, "code", 500)
    messages = {
        400: gettext("The request was refused (the form expired or was not sent from this page)."),
        403: gettext("Your account may not open this page."),
        404: gettext("This page does not exist."),
        405: gettext("This page does not accept that request."),
        413: gettext("What you sent is too large."),
    }
    return render_template("error.html", code=code, message=messages.get(code, "")), code
