"""Registers the blueprints, error pages and template helpers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Flask, g, render_template, request
from flask_babel import format_decimal, gettext
from jinja2 import pass_context

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
from filterd.policy.decision import RuleSource

_SOURCE = re.compile(r"^list (?P<name>\S+)(?: \(version (?P<version>[^)]*)\))?$"
                     r"|^(?P<kind>builtin|override) (?P<bname>\S+)$"
                     r"|^(?P<file>/\S+?)(?::(?P<line>\d+))?$")


def parse_source(text: str) -> RuleSource | None:
    """The RuleSource whose str() an event stored (filterd.policy.decision.RuleSource)."""
    m = _SOURCE.match(text or "")
    if m is None:
        return None
    if m["name"]:
        return RuleSource("list", m["name"], version=m["version"])
    if m["kind"]:
        return RuleSource(m["kind"], m["bname"])
    return RuleSource("policy", m["file"], line=int(m["line"]) if m["line"] else None)


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
    @pass_context   # never folded at compile time: `'disabled'|term(...)` is per language
    def _term(_ctx: object, code: object, kind: str) -> str:
        """`{{ r.action|term('audit') }}`: the catalog's word for a code."""
        return words.term(kind, code, lang())

    @app.template_filter("category")
    def _category(cid: str | None) -> str:
        return _words().category(cid, lang())

    @app.template_filter("group")
    def _group(gid: str | None) -> str:
        return _words().group(gid, lang())

    @app.template_filter("error_words")
    def _error_words(value: object) -> str:
        """An error in the page's language: a list source's state (its code and parameters
        are kept in state.json) or plain text (shown as it is)."""
        if isinstance(value, dict) and value.get("error_code"):
            from filterd.words.messages import message

            return message(value["error_code"], lang(), **(value.get("error_params") or {}))
        if isinstance(value, dict):
            return str(value.get("error") or "")
        return str(value or "")

    @app.template_filter("source_words")
    def _source_words(value: str, category: str | None = None) -> str:
        """An event's stored source text ("list seed-games (version seed)") in words."""
        src = parse_source(value)
        return _words().source(src, lang(), category) if src is not None else value

    @app.template_filter("audit_target")
    def _audit_target(value: str) -> str:
        """Audit targets start with a group id ("thcs facebook.com"): its name instead."""
        head, _, rest = str(value or "").partition(" ")
        known = {grp.id for grp in backend().groups(include_abstract=True)}
        if head in known:
            return f"{_words().group(head, lang())} {rest}".strip()
        return str(value or "")

    app.jinja_env.globals.update(words=_words,
                                 all_terms=lambda kind: words.terms(kind, lang()))

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
