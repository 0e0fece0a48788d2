"""Helpers every blueprint uses: the database, the backend, the language, audit, paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlite_utils
from flask import current_app, g, request
from flask_babel import get_locale

from admin_ui import audit
from admin_ui.backend import Backend


def db() -> sqlite_utils.Database:
    return current_app.extensions["filterd_db"]()


def backend() -> Backend:
    return current_app.extensions["filterd"]


def lang() -> str:
    return str(get_locale() or "vi")


def log_change(action: str, *, target: str = "", diff: str = "", reason: str = "",
               outcome: str = "ok") -> int:
    user = g.user
    return audit.record(db(), actor=user.name if user else "-", role=user.role if user else "-",
                        action=action, target=target, diff=diff, reason=reason, outcome=outcome)


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths, so a link cannot send a signed-in user elsewhere."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def page_args() -> tuple[int, int]:
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    size = int(current_app.config["PAGE_SIZE"])
    return page, size


def form_reason() -> str:
    return (request.form.get("reason") or "").strip()[:500]


def group_label(gid: str) -> str:
    """The group's name in the page's language (never its id, unless it has no name)."""
    for grp in backend().groups(include_abstract=True):
        if grp.id == gid:
            return grp.label(lang())
    return gid


def visible_groups() -> list[Any]:
    """Groups the signed-in user may act for (teachers: theirs; others: all)."""
    groups = backend().groups()
    user = g.user
    if user is not None and user.role == "teacher":
        return [grp for grp in groups if grp.id in user.groups]
    return groups
