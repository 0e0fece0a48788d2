"""The audit log page and its CSV export (for the yearly review)."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from admin_ui import audit
from admin_ui.security import roles_required
from admin_ui.web import db, page_args

bp = Blueprint("audit", __name__)


def _filters() -> dict[str, str]:
    return {k: (request.args.get(k) or "").strip() for k in ("actor", "action")}


@bp.route("/audit")
@roles_required("admin")
def index():
    page, size = page_args()
    f = _filters()
    total = audit.count(db(), **f)
    rows = audit.search(db(), **f, limit=size, offset=(page - 1) * size)
    pages = max(1, (total + size - 1) // size)
    return render_template("audit.html", rows=rows, filters=f, page=page, pages=pages, total=total)


@bp.route("/audit.csv")
@roles_required("admin")
def export():
    rows = audit.search(db(), **_filters(), limit=1_000_000)
    return Response(audit.to_csv(rows, audit.AUDIT_COLUMNS), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=filterd-audit.csv"})
