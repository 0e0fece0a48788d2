"""Errors of the admin page, under filterd's one root exception.

An AdminError carries an English message id with %(name)s parameters, so the
page can show it translated (`translated(exc)`) while logs and the CLI print English.
"""

from __future__ import annotations

from typing import Any

from filterd.errors import FilterdError


def N_(msgid: str) -> str:
    """Mark a message for extraction; translated where it is shown."""
    return msgid


class AdminError(FilterdError):
    """Something the admin page refused to do; the message is shown to the person."""

    def __init__(self, msgid: str, **params: Any) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)


class AccountError(AdminError):
    """A user account could not be created or changed (bad name, weak password, duplicate)."""


class ReloadError(AdminError):
    """The daemon could not be told to reload (no pid file, process gone)."""


def translated(exc: BaseException) -> str:
    """The error in the page's language when it is one of ours; else its own words."""
    if isinstance(exc, AdminError):
        from flask_babel import gettext

        return gettext(exc.msgid, **exc.params)
    if getattr(exc, "code", None):   # a coded filterd error (loader, lists): the page's language
        from admin_ui.web import lang
        from filterd.words.messages import render_error

        return render_error(exc, lang())
    return str(exc)
