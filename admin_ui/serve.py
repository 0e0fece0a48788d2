"""Serve the admin page with waitress (a production WSGI server), never Flask's dev server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import waitress

from admin_ui import create_app
from admin_ui.accounts import create_user, parse_groups
from admin_ui.store import open_admin_db


def make_server(config: Any, *, listen: tuple[str, int] | None = None, secure_cookies: bool = True,
                threads: int = 4, test_config: dict[str, Any] | None = None) -> Any:
    """A waitress server for the admin app, bound but not yet running (port 0 = any free one)."""
    app = create_app(config, {"SESSION_COOKIE_SECURE": secure_cookies, **(test_config or {})})
    backend = app.extensions["filterd"]
    host, port = listen or tuple(backend.config.admin.listen)
    return waitress.create_server(app, host=host, port=int(port), threads=threads,
                                  ident="filterd-admin", clear_untrusted_proxy_headers=True)


def serve(config: Any, *, listen: tuple[str, int] | None = None, secure_cookies: bool = True,
          threads: int = 4) -> None:
    """Bind, tell systemd the page is up (filterd-admin.service is Type=notify: `active`
    means listening, so `filterd doctor` right after a boot does not find it still
    importing; a no-op outside systemd), serve."""
    from filterd.sdnotify import Notifier

    server = make_server(config, listen=listen, secure_cookies=secure_cookies, threads=threads)
    where = f"http://{server.effective_host}:{server.effective_port}/"
    print(f"filterd admin page on {where}", flush=True)
    Notifier().ready(f"admin page on {where}")
    server.run()


def add_user(config: Any, name: str, password: str, role: str, groups: str = "") -> str:
    """Create an account from the command line; returns the name. The audit log records it."""
    from admin_ui import audit
    from admin_ui.backend import Backend

    if config is None or isinstance(config, str | Path):
        from filterd.config import load_config

        config = load_config(config)
    backend = Backend(config)
    db = open_admin_db(backend.data_dir)
    try:
        user = create_user(db, name, password, role, parse_groups(groups))
        audit.record(db, actor="cli", role="admin", action="account.create", target=user.name,
                     diff=audit.value_diff(None, {"name": user.name, "role": role,
                                                  "groups": list(user.groups)}))
    finally:
        db.conn.close()
    return user.name
