"""filterd's admin web page: a Flask application factory.

`create_app(config, test_config)` wires accounts, CSRF, roles, the audit log,
Vietnamese/English translations and the pages. `config` is a filterd Config (or a
path to filterd.yaml, or None for the embedded defaults). Serve it with waitress
(`filterd admin serve`), never with Flask's development server.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, redirect, request, session, url_for
from flask_babel import Babel

from admin_ui import i18n
from admin_ui.accounts import get_user, user_count
from admin_ui.backend import Backend
from admin_ui.security import csrf_protect, csrf_token, load_or_create_secret
from admin_ui.store import open_admin_db
from filterd.state import sessions

# Endpoints reachable before the first admin exists.
_FIRST_RUN_OK = frozenset({"auth.setup", "auth.set_lang", "static"})


def _load_config(config: Any) -> tuple[Any, Path | None]:
    if config is None or isinstance(config, str | Path):
        from filterd.config import load_config

        path = Path(config) if config is not None else None
        return load_config(path), path
    return config, getattr(config, "source_file", None)


def create_app(config: Any = None, test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    test_config = dict(test_config or {})
    backend = test_config.pop("FILTERD_BACKEND", None)
    if backend is None:
        cfg, path = _load_config(config)
        backend = Backend(cfg, config_path=test_config.pop("FILTERD_CONFIG_PATH", path))
    app.extensions["filterd"] = backend
    app.config.update(
        SECRET_KEY=load_or_create_secret(backend.data_dir),
        SESSION_COOKIE_NAME="filterd_admin",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        MAX_CONTENT_LENGTH=1024 * 1024,
        BABEL_DEFAULT_LOCALE=i18n.DEFAULT_LANGUAGE,
        BABEL_TRANSLATION_DIRECTORIES=str(i18n.TRANSLATIONS),
        PAGE_SIZE=50,
    )
    app.config.update(test_config)
    def school_timezone() -> str:
        # read per request: a time zone saved on the settings page applies at once
        tz = getattr(backend.config, "timezone", None)
        return str(getattr(tz, "key", tz) or "Asia/Ho_Chi_Minh")

    app.config["BABEL_DEFAULT_TIMEZONE"] = school_timezone()

    i18n.compile_catalogs()
    Babel(app, locale_selector=i18n.select_locale, timezone_selector=school_timezone)

    def db():
        if "db" not in g:
            g.db = open_admin_db(backend.data_dir)
        return g.db

    app.extensions["filterd_db"] = db

    @app.teardown_appcontext
    def _close_db(_exc: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.conn.close()

    @app.before_request
    def _load_user() -> Any:
        csrf_protect()
        g.user = None
        sid = session.get("sid")
        if sid is not None:
            # Valid only while its server-side record lives: sign-out, a password or role
            # change and disabling the account delete it (filterd.state.sessions).
            uid = sessions.lookup(db(), sid)
            user = get_user(db(), uid) if uid is not None else None
            if user is None or user.disabled:
                if uid is not None:
                    sessions.end(db(), sid)
                lang = session.get("lang")
                session.clear()
                if lang:
                    session["lang"] = lang
            else:
                g.user = user
        if request.endpoint not in _FIRST_RUN_OK and user_count(db()) == 0:
            return redirect(url_for("auth.setup"))
        return None

    @app.after_request
    def _headers(resp):  # type: ignore[no-untyped-def]
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    from admin_ui import views

    views.register(app)
    app.jinja_env.globals.update(csrf_token=csrf_token)
    return app
