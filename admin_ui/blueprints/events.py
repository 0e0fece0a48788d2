"""Event log search: time, group, category, client, name; paginated; CSV export.

Client identities (address, MAC) are for admins only: other roles neither see nor
filter by them. Every value reaches SQL as a bound parameter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, render_template, request
from flask_babel import get_timezone

from admin_ui.audit import to_csv
from admin_ui.security import ALL_ROLES, roles_required
from admin_ui.store import table_exists
from admin_ui.web import backend, db, page_args

bp = Blueprint("events", __name__)

PUBLIC_COLUMNS = ("ts", "group_id", "name", "qtype", "action", "reason", "category", "rule",
                  "source", "path")
CLIENT_COLUMNS = ("client_ip", "client_mac")
CSV_LIMIT = 100_000


def _parse_local(text: str) -> float | None:
    """A datetime-local value in the school's time zone -> unix seconds."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        tz = get_timezone()
        dt = dt.replace(tzinfo=ZoneInfo(str(tz)))
    return dt.timestamp()


def _like(text: str) -> str:
    """A LIKE pattern matching `text` literally (its % and _ escaped)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def build_query() -> tuple[str, list[Any], dict[str, str]]:
    f = {k: (request.args.get(k) or "").strip() for k in
         ("since", "until", "group", "category", "client", "name", "action")}
    clauses: list[str] = []
    args: list[Any] = []
    since, until = _parse_local(f["since"]), _parse_local(f["until"])
    if since is not None:
        clauses.append("ts >= ?")
        args.append(since)
    if until is not None:
        clauses.append("ts < ?")
        args.append(until)
    for key, col in (("group", "group_id"), ("category", "category"), ("action", "action")):
        if f[key]:
            clauses.append(f"{col} = ?")
            args.append(f[key])
    if f["name"]:
        clauses.append("name LIKE ? ESCAPE '\\'")
        args.append(_like(f["name"].lower()))
    user = g.user
    if user.is_admin and f["client"]:
        clauses.append("(client_ip = ? OR client_mac = ?)")
        args += [f["client"], f["client"].lower()]
    elif not user.is_admin:
        f["client"] = ""
    if user.role == "teacher":
        marks = ",".join("?" * len(user.groups)) or "NULL"
        clauses.append(f"group_id IN ({marks})")
        args += list(user.groups)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return where, args, f


def _columns() -> tuple[str, ...]:
    return (*PUBLIC_COLUMNS[:1], *CLIENT_COLUMNS, *PUBLIC_COLUMNS[1:]) if g.user.is_admin \
        else PUBLIC_COLUMNS


@bp.route("/events")
@roles_required(*ALL_ROLES)
def index():
    page, size = page_args()
    rows: list[dict] = []
    total = 0
    where, args, f = build_query()
    present = table_exists(db(), "events")
    if present:
        cols = ", ".join(_columns())
        total = db().execute(f"SELECT COUNT(*) FROM events {where}", args).fetchone()[0]
        rows = list(db().query(f"SELECT {cols} FROM events {where} ORDER BY ts DESC, id DESC"
                               " LIMIT ? OFFSET ?", [*args, size, (page - 1) * size]))
    pages = max(1, (total + size - 1) // size)
    return render_template("events.html", rows=rows, total=total, page=page, pages=pages,
                           filters=f, columns=_columns(), groups=backend().groups(),
                           categories=backend().categories(), present=present)


@bp.route("/events.csv")
@roles_required(*ALL_ROLES)
def export():
    where, args, _f = build_query()
    rows: list[dict] = []
    if table_exists(db(), "events"):
        rows = list(db().query(f"SELECT {', '.join(_columns())} FROM events {where}"
                               f" ORDER BY ts DESC, id DESC LIMIT {CSV_LIMIT}", args))
    return Response(to_csv(rows, _columns()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=filterd-events.csv"})
