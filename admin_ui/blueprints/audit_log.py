"""The audit log page and its CSV export (for the yearly review)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, render_template, request
from flask_babel import get_timezone

from admin_ui import audit
from admin_ui.security import roles_required
from admin_ui.web import db, page_args

bp = Blueprint("audit", __name__)


def _filters() -> dict[str, str]:
    return {k: (request.args.get(k) or "").strip() for k in ("actor", "action", "since", "until")}


def _day_start(text: str, days: int = 0) -> float | None:
    """Midnight (school time) of the date `text` (YYYY-MM-DD) plus `days`; None if not a date."""
    try:
        day = date.fromisoformat(text) + timedelta(days=days)
    except ValueError:
        return None
    return datetime.combine(day, time(), ZoneInfo(str(get_timezone()))).timestamp()


def _query(f: dict[str, str]) -> dict[str, Any]:
    """Search arguments: both dates included (a school year is since 1 Sep until 31 Aug)."""
    return {"actor": f["actor"], "action": f["action"], "since": _day_start(f["since"]),
            "until": _day_start(f["until"], 1)}


@bp.route("/audit")
@roles_required("admin")
def index():
    page, size = page_args()
    f = _filters()
    total = audit.count(db(), **_query(f))
    rows = audit.search(db(), **_query(f), limit=size, offset=(page - 1) * size)
    pages = max(1, (total + size - 1) // size)
    return render_template("audit.html", rows=rows, filters=f, page=page, pages=pages, total=total)


@bp.route("/audit.csv")
@roles_required("admin")
def export():
    rows = audit.search(db(), **_query(_filters()), limit=1_000_000)
    tz = ZoneInfo(str(get_timezone()))
    for r in rows:   # a readable time beside the unix seconds, in the school's time zone
        r["time"] = datetime.fromtimestamp(r["ts"], tz).isoformat(timespec="seconds")
    columns = ("id", "time", *audit.AUDIT_COLUMNS[1:])
    return Response(audit.to_csv(rows, columns), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=filterd-audit.csv"})
