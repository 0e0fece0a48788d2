"""Secret key, CSRF tokens, and the role check every view declares."""

from __future__ import annotations

import functools
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import abort, g, redirect, request, session, url_for

from filterd.state.atomic import create_exclusive

SECRET_FILE = "admin_secret"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

F = TypeVar("F", bound=Callable[..., Any])


def load_or_create_secret(data_dir: Path) -> bytes:
    """The session-signing secret: made once on first run, kept 0600 in data_dir."""
    path = Path(data_dir) / SECRET_FILE
    if not create_exclusive(path, secrets.token_bytes(48), mode=0o600):
        secret = path.read_bytes()
        if len(secret) < 32:
            raise RuntimeError(f"{path}: secret too short; delete it to make a new one") from None
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # someone loosened it: tighten again
        return secret
    return path.read_bytes()


def csrf_token() -> str:
    """This session's CSRF token (made on first use), for every form."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_protect() -> None:
    """before_request: refuse any state-changing request without the session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), str(sent)):
        abort(400, description="csrf")


def roles_required(*roles: str) -> Callable[[F], F]:
    """Only signed-in users with one of `roles` reach the view; others get 403.

    The roles are also kept on the view function so a test can check that every
    route declares them.
    """

    def wrap(view: F) -> F:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            user = g.get("user")
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path))
            if user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        inner.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return inner  # type: ignore[return-value]

    return wrap


def public(view: F) -> F:
    """Mark a view as reachable without signing in (login, first run, language)."""
    view.allowed_roles = frozenset({"*"})  # type: ignore[attr-defined]
    return view


ALL_ROLES = ("admin", "teacher", "viewer")
