"""Event log search: time, group, category, client, name; paginated; CSV export.

Client identities (address, MAC) are for admins only: other roles neither see nor
filter by them. Every value reaches SQL as a bound parameter.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, render_template, request
from flask_babel import get_timezone

from admin_ui.audit import to_csv
from admin_ui.security import ALL_ROLES, roles_required
from admin_ui.web import backend, db, page_args
from filterd.state.db import table_exists
from filterd.state.eventquery import EventFilter, count_events, search_events

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


def build_filter() -> tuple[EventFilter, dict[str, str]]:
    """The page's filter fields as an EventFilter (what this user may see), and the fields."""
    f = {k: (request.args.get(k) or "").strip() for k in
         ("since", "until", "group", "category", "client", "name", "action")}
    user = g.user
    if not user.is_admin:
        f["client"] = ""
    return EventFilter(since=_parse_local(f["since"]), until=_parse_local(f["until"]),
                       group=f["group"] or None, category=f["category"] or None,
                       action=f["action"] or None, name=f["name"] or None,
                       client=f["client"] or None,
                       groups=tuple(user.groups) if user.role == "teacher" else None), f


def _columns() -> tuple[str, ...]:
    return (*PUBLIC_COLUMNS[:1], *CLIENT_COLUMNS, *PUBLIC_COLUMNS[1:]) if g.user.is_admin \
        else PUBLIC_COLUMNS


@bp.route("/events")
@roles_required(*ALL_ROLES)
def index():
    page, size = page_args()
    flt, f = build_filter()
    present = table_exists(db(), "events")
    total = count_events(db(), flt)
    rows = search_events(db(), flt, columns=_columns(), limit=size, offset=(page - 1) * size)
    pages = max(1, (total + size - 1) // size)
    return render_template("events.html", rows=rows, total=total, page=page, pages=pages,
                           filters=f, columns=_columns(), groups=backend().groups(),
                           categories=backend().categories(), present=present)


@bp.route("/events.csv")
@roles_required(*ALL_ROLES)
def export():
    flt, _f = build_filter()
    rows = search_events(db(), flt, columns=_columns(), limit=CSV_LIMIT)
    return Response(to_csv(rows, _columns()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=filterd-events.csv"})
