"""A read-only JSON API for the authorities (Sở KH&CN, the ministry): the same k-anonymous
figures the office's pages and reports show, paged, behind tokens of their own.

    GET /api/export/v1/schools                     enrolled schools
    GET /api/export/v1/counts?from=&to=&district=  queries per day, school, tier, category,
                                                   action (as the schools reported them)
    GET /api/export/v1/report?kind=&year=&n=       the periodic report's tables

Every request carries `Authorization: Bearer fdx_…`. A token is made with
`filterd office token create --name "Sở KH&CN Hà Nội"` (shown once; the office keeps its
SHA-256 only) and revoked with `filterd office token revoke --name …`. Nothing here writes,
and nothing here is finer than what the schools sent: every count has at least k devices
behind it (docs/privacy.md). docs/export-api.md documents it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request

from filterd.sync.office import document, words
from filterd.sync.office.storage import Storage, StorageError

bp = Blueprint("export", __name__, url_prefix="/api/export/v1")
PREFIX = "fdx_"
PER_PAGE_MAX = 1000
PER_PAGE = 200


class TokenError(StorageError):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_token(storage: Storage, name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise TokenError("a token needs a name (who uses it), at most 100 characters")
    if any(n == name and r is None for n, r in _tokens(storage)):
        raise TokenError(f"a token named {name!r} is already in use; revoke it first")
    token = PREFIX + secrets.token_urlsafe(32)
    with storage.transaction() as tx:
        tx.execute("INSERT INTO export_tokens (token_sha256, name, created_at) VALUES (?, ?, ?)",
                   [_hash(token), name, _now()])
    return token


def revoke_token(storage: Storage, name: str) -> int:
    with storage.transaction() as tx:
        return tx.execute("UPDATE export_tokens SET revoked_at = ? WHERE name = ?"
                          " AND revoked_at IS NULL", [_now(), name.strip()])


def _tokens(storage: Storage) -> list[tuple[str, str | None]]:
    return [(n, r) for n, r in storage.query("SELECT name, revoked_at FROM export_tokens")]


def list_tokens(storage: Storage) -> list[tuple[str, str, str | None, str | None]]:
    return [tuple(r) for r in storage.query(
        "SELECT name, created_at, revoked_at, last_used_at FROM export_tokens ORDER BY name")]


def _error(status: int, message: str):
    resp = jsonify({"error": message})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="filterd-export"'
    return resp


class _Bad(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


@bp.before_request
def _authenticate():
    storage: Storage = current_app.extensions["office"]["storage"]
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer " + PREFIX):
        return _error(401, "send Authorization: Bearer <token> (filterd office token create)")
    rows = storage.query("SELECT name, revoked_at FROM export_tokens WHERE token_sha256 = ?",
                         [_hash(auth.removeprefix("Bearer "))])
    if not rows:
        return _error(401, "unknown token")
    if rows[0][1] is not None:
        return _error(401, f"this token was revoked on {rows[0][1]}")
    with storage.transaction() as tx:
        tx.execute("UPDATE export_tokens SET last_used_at = ? WHERE token_sha256 = ?",
                   [_now(), _hash(auth.removeprefix("Bearer "))])
    return None


@bp.errorhandler(_Bad)
def _bad(exc: _Bad):
    return _error(400, exc.message)


def _int(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise _Bad(f"{name}: not a whole number: {raw!r}") from None
    if not lo <= v <= hi:
        raise _Bad(f"{name}: must be between {lo} and {hi}")
    return v


def _date(name: str) -> date:
    raw = request.args.get(name)
    if not raw:
        raise _Bad(f"{name} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _Bad(f"{name}: not a date (YYYY-MM-DD): {raw!r}") from None


def _page(total: int, items: list[dict[str, Any]], page: int, per_page: int) -> dict[str, Any]:
    last = max(1, -(-total // per_page))
    nxt = None
    if page < last:
        args = {**request.args.to_dict(), "page": str(page + 1), "per_page": str(per_page)}
        nxt = request.base_url + "?" + urlencode(args)
    return {"items": items, "page": page, "per_page": per_page, "total": total,
            "pages": last, "next": nxt}


@bp.get("/schools")
def schools():
    storage: Storage = current_app.extensions["office"]["storage"]
    page = _int("page", 1, 1, 10**6)
    per_page = _int("per_page", PER_PAGE, 1, PER_PAGE_MAX)
    all_ = storage.schools()
    items = [{"id": s.id, "name": s.name, "district": s.district, "province": s.province,
              "enrolled_at": s.enrolled_at}
             for s in all_[(page - 1) * per_page:page * per_page]]
    return jsonify(_page(len(all_), items, page, per_page))


@bp.get("/counts")
def counts():
    storage: Storage = current_app.extensions["office"]["storage"]
    start, end = _date("from"), _date("to")
    if start > end:
        raise _Bad("'from' is after 'to'")
    if (end - start).days > 366:
        raise _Bad("at most 367 days per request")
    page = _int("page", 1, 1, 10**7)
    per_page = _int("per_page", PER_PAGE, 1, PER_PAGE_MAX)
    where, params = "c.day >= ? AND c.day <= ?", [start.isoformat(), end.isoformat()]
    if request.args.get("district"):
        where += " AND s.district = ?"
        params.append(request.args["district"])
    if request.args.get("school"):
        where += " AND c.school_id = ?"
        params.append(request.args["school"])
    total = int(storage.query("SELECT COUNT(*) FROM report_counts c JOIN schools s"
                              f" ON s.id = c.school_id WHERE {where}", params)[0][0])
    rows = storage.query(
        "SELECT c.day, c.school_id, s.district, s.province, c.grp, c.category, c.action, c.n"
        f" FROM report_counts c JOIN schools s ON s.id = c.school_id WHERE {where}"
        " ORDER BY c.day, c.school_id, c.grp, c.category, c.action LIMIT ? OFFSET ?",
        [*params, per_page, (page - 1) * per_page])
    items = [{"day": d, "school_id": sid, "district": dist, "province": prov,
              "age_group": grp, "age_group_vi": words.tier(grp, "vi"),
              "category": cat, "category_vi": words.category(cat, "vi"),
              "action": action, "n": int(n)}
             for d, sid, dist, prov, grp, cat, action, n in rows]
    return jsonify(_page(total, items, page, per_page))


@bp.get("/report")
def report():
    storage: Storage = current_app.extensions["office"]["storage"]
    kind = request.args.get("kind") or "year"
    try:
        period = document.Period(kind, _int("year", date.today().year, 2000, 9999),
                                 _int("n", 0, 0, 12))
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    data = document.build(storage, period, request.args.get("district") or None)
    start, end = period.bounds
    return jsonify({
        "period": {"kind": period.kind, "year": period.year, "n": period.n,
                   "from": start.isoformat(), "to": end.isoformat(), "words": period.words},
        "schools": data.schools, "schools_reporting": data.schools_reporting,
        "school_days": data.school_days, "queries": data.queries, "blocked": data.blocked,
        "bypass_attempts": data.bypass, "blocked_previous_period": data.previous_blocked,
        "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows, "total": t.total}
                   for t in data.tables]})
