"""The office receiver: a Flask app factory (`create_app`) and its waitress server.

Blueprints: `api` (uploads from appliances, signed, no session), `auth`
(sign in/out, language), `pages` (dashboard, CSV, yearly report, enrolment).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, abort, g, jsonify, make_response, request, session

from filterd import webauth
from filterd.sync.office.i18n import DEFAULT, LANGUAGES, translate
from filterd.sync.office.ingest import Limits
from filterd.sync.office.storage import Storage, StorageError


def secret_key(path: Path) -> bytes:
    """The session signing key, created once (0600) beside the office database."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def create_app(storage: Storage, *, secret: bytes, timezone: ZoneInfo | None = None,
               limits: Limits | None = None, https: bool = False,
               data_dir: Path | None = None, pdf_engine: str = "auto") -> Flask:
    from filterd.sync.office import api, auth, export, feed_pages, pages

    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret, PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
                      MAX_CONTENT_LENGTH=2 * 1024 * 1024)
    webauth.secure_session_config(app, https=https)
    app.extensions["office"] = {"storage": storage,
                                "tz": timezone or ZoneInfo("Asia/Ho_Chi_Minh"),
                                "limits": limits or Limits(),
                                # the office's own files (its feed signing key): beside
                                # a SQLite database unless told
                                "data_dir": Path(data_dir) if data_dir else (
                                    storage.path.parent if storage.backend == "sqlite"
                                    else None),
                                "pdf_engine": pdf_engine}
    storage.migrate()

    @app.before_request
    def _lang_and_csrf() -> None:
        lang = session.get("lang") or DEFAULT
        g.lang = lang if lang in LANGUAGES else DEFAULT
        if request.method == "POST" and request.blueprint not in ("api", "export") \
                and not webauth.csrf_valid(session, request):
            abort(400, translate("The form expired; please try again.", g.lang))

    @app.errorhandler(StorageError)
    def _database_unavailable(exc: StorageError):
        # The database went away (restart, network): say so, and when to come back.
        app.logger.warning("office database unavailable (%s %s): %s", request.method,
                           request.path, exc)
        if request.blueprint in ("api", "export"):
            resp = jsonify({"status": "refused", "error": "office database unavailable"})
        else:
            resp = make_response(translate(
                "The office database is unavailable; please try again in a minute.",
                g.get("lang", DEFAULT)))
            resp.mimetype = "text/plain"
        resp.status_code = 503
        resp.headers["Retry-After"] = "60"
        return resp

    @app.context_processor
    def _helpers() -> dict:
        return {"_": lambda s: translate(s, g.get("lang", DEFAULT)),
                "csrf_token": lambda: webauth.csrf_token(session),
                "lang": g.get("lang", DEFAULT), "languages": LANGUAGES,
                "user": session.get("user"), "role": session.get("role")}

    app.register_blueprint(api.bp)
    app.register_blueprint(export.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(feed_pages.bp)
    return app


def serve(app: Flask, host: str, port: int, *, threads: int = 8) -> None:
    """Bind, tell systemd we are ready (Type=notify units; a no-op otherwise), serve."""
    from waitress.server import create_server

    from filterd.sdnotify import Notifier

    # waitress refuses bodies above this before Flask sees them (the API checks again)
    server = create_server(app, host=host, port=port, threads=threads,
                           max_request_body_size=app.config["MAX_CONTENT_LENGTH"],
                           ident="filterd-office")
    Notifier().ready(f"office receiver on {host}:{server.effective_port}")
    try:
        server.run()
    finally:
        server.close()
