"""Settings: school id and name, office URL, retention, time zone, override cap.

Edits filterd.yaml: the candidate is validated by the daemon's own loader
(`filterd.config.load_config`) before the file is replaced atomically; then the
daemon reloads. Without a config file (embedded defaults) the page is read-only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from ruamel.yaml.comments import CommentedMap

from admin_ui import audit
from admin_ui.blueprints import control
from admin_ui.blueprints.control import setting_label
from admin_ui.blueprints.overrides import _flash_reload
from admin_ui.policy_edit import yaml_rt
from admin_ui.security import roles_required
from admin_ui.web import backend, form_reason, log_change
from filterd.errors import ConfigError
from filterd.state.atomic import atomic_write

bp = Blueprint("settings", __name__)

# form field -> (section or None, key, is a whole number)
FIELDS: dict[str, tuple[str | None, str, bool]] = {
    "school_id": (None, "school_id", False),
    "school_name": (None, "school_name", False),
    "timezone": (None, "timezone", False),
    "office_url": ("sync", "office_url", False),
    "retention_days": ("events", "retention_days", True),
    "max_override_minutes": ("admin", "max_override_minutes", True),
}


def current_values(config: Any) -> dict[str, Any]:
    out = {}
    for fld, (section, key, _num) in FIELDS.items():
        obj = getattr(config, section, None) if section else config
        value = getattr(obj, key, "")
        out[fld] = str(getattr(value, "key", value))
    return out


def validate_config_text(path: Path, text: str) -> Any:
    """Load `text` as if it were `path` (same directory, so relative paths mean the same)."""
    from filterd.config import load_config

    fd, tmp = tempfile.mkstemp(prefix=".filterd-candidate-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            # The candidate stands for `path`: the running config must name the real file.
            return dataclasses.replace(load_config(tmp), source_file=path)
        except ConfigError as exc:
            raise ConfigError(exc.message, file=str(path), line=exc.line, key=exc.key) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# Read when the filter starts: changing them in filterd.yaml needs a restart (the page says
# so after a reload, with a restart button).
STARTUP = (("dns", "listen"), ("http", "block_page_listen"), ("http", "proxy_listen"),
           ("http", "mode"), ("admin", "listen"), ("metrics", "listen"))


def _endpoint(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        host, port = value
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(value, tuple):
        return ", ".join(_endpoint(v) for v in value)
    return "" if value is None else str(value)


def startup_values(config: Any) -> list[tuple[str, str]]:
    out = []
    for section, key in STARTUP:
        value = getattr(getattr(config, section, None), key, None)
        out.append((setting_label(f"{section}.{key}"), _endpoint(value) or gettext("off")))
    return out


def _render(values: dict, error: str | None, status: int = 200):  # type: ignore[no-untyped-def]
    be = backend()
    return render_template("settings.html", values=values, config_path=be.config_path,
                           error=error, startup=startup_values(be.config),
                           control=control.state()), status


@bp.route("/settings")
@roles_required("admin")
def index():
    return _render(current_values(backend().config), None)


@bp.route("/settings", methods=["POST"])
@roles_required("admin")
def save():
    be = backend()
    path = be.config_path
    if path is None:
        flash(gettext("filterd runs on its embedded defaults; there is no settings file to edit."),
              "error")
        return redirect(url_for("settings.index"))
    reason = form_reason()
    before_text = path.read_text(encoding="utf-8")
    rt = yaml_rt()
    doc = rt.load(before_text) or CommentedMap()
    if not isinstance(doc, dict):
        doc = CommentedMap()
    for fld, (section, key, is_num) in FIELDS.items():
        if fld not in request.form:
            continue
        raw = request.form[fld].strip()
        value: Any = raw
        if is_num:
            with contextlib.suppress(ValueError):
                value = int(raw)
        target = doc.setdefault(section, CommentedMap()) if section else doc
        if not isinstance(target, dict):
            target = doc[section] = CommentedMap()
        if str(target.get(key, "")) != str(value) or key not in target:
            target[key] = value  # unchanged keys keep their quoting and comments
    buf = io.StringIO()
    rt.dump(doc, buf)
    after_text = buf.getvalue()
    error = None
    if not reason:
        error = gettext("Type a reason.")
    else:
        try:
            new_config = validate_config_text(path, after_text)
        except ConfigError as exc:
            error = str(exc)
    if error:
        log_change("settings.save", target=str(path), reason=reason, outcome=f"refused: {error}")
        return _render({f: request.form.get(f, "") for f in FIELDS}, error, 400)
    atomic_write(path, after_text, keep_previous=True)
    be.config = new_config
    result = be.reload()
    log_change("settings.save", target=str(path),
               diff=audit.text_diff(before_text, after_text, path.name),
               reason=reason, outcome="ok" if result.ok else f"reload: {result.message}")
    flash(gettext("Settings saved."), "ok")
    _flash_reload(result)
    return redirect(url_for("settings.index"))
