"""The office dashboard: reporting status, blocks, top categories, bypass trends,
list freshness, the yearly report and enrolment. Every table downloads as CSV
with `?format=csv&table=N`."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Response, abort, current_app, g, render_template, request, session

from filterd.sync.office import charts, document, queries, render, words
from filterd.sync.office.auth import login_required
from filterd.sync.office.enrol import enrol_school
from filterd.sync.office.i18n import translate
from filterd.sync.office.storage import DuplicateSchool, StorageError

bp = Blueprint("pages", __name__, template_folder="templates")


def _office():
    return current_app.extensions["office"]


def _today() -> date:
    return datetime.now(_office()["tz"]).date()


def _date_arg(name: str, default: date) -> date:
    raw = request.args.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, f"{name}: not a date (YYYY-MM-DD): {raw!r}")


def _range() -> tuple[date, date]:
    end = _date_arg("to", _today() - timedelta(days=1))
    start = _date_arg("from", end - timedelta(days=29))
    if start > end:
        abort(400, "'from' is after 'to'")
    return start, end


def _cell(value):
    """A text cell that a spreadsheet would run as a formula (a school name typed as
    `=HYPERLINK(...)`) is written with a leading apostrophe, so Excel shows it as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


_WORD_COLUMNS = {"Category": words.category, "Age group": words.tier}
_TIME_COLUMNS = ("Received at", "List updated", "Enrolled")


def _local(value):
    """An ISO UTC time as the office reads it: its own zone, day/month/year."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return value
    try:
        t = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return value
    return t.astimezone(_office()["tz"]).strftime("%d/%m/%Y %H:%M")


def _in_words(tables: list[queries.Table]) -> list[queries.Table]:
    """Category and tier ids become words, times the office's zone (pages and CSV alike)."""
    for t in tables:
        for i, col in enumerate(t.columns):
            if col in _WORD_COLUMNS:
                fn = _WORD_COLUMNS[col]
                for row in t.rows:
                    row[i] = fn(row[i], g.lang)
            elif col in _TIME_COLUMNS:
                for row in t.rows:
                    row[i] = _local(row[i])
            elif col == "Day":
                for row in t.rows:
                    if isinstance(row[i], str) and len(row[i]) == 10:
                        row[i] = f"{row[i][8:10]}/{row[i][5:7]}/{row[i][:4]}"
    return tables


def _render(name: str, title: str, tables: list[queries.Table], **extra):
    tables = _in_words(tables)
    if request.args.get("format") == "csv":
        try:
            table = tables[int(request.args.get("table", "0"))]
        except (ValueError, IndexError):
            abort(400, "no such table")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([translate(c, g.lang) for c in table.columns])
        w.writerows([[_cell(v) for v in row] for row in table.rows])
        stamp = extra.get("stamp", _today().isoformat())
        fname = f"{name}-{stamp}-{int(request.args.get('table', 0))}.csv"
        return Response("\ufeff" + buf.getvalue(), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename={fname}"})
    return render_template("office/tables.html", page=name, title=title, tables=tables,
                           args=request.args, **extra)


@bp.get("/")
@login_required
def today():
    day = _date_arg("day", _today() - timedelta(days=1))
    reported, missing = queries.reporting_status(_office()["storage"], day)
    return _render("today", f"{translate('Reports for', g.lang)} {day.isoformat()}",
                   [missing, reported], day=day, stamp=day.isoformat())


@bp.get("/blocks")
@login_required
def blocks():
    start, end = _range()
    district = request.args.get("district") or None
    st = _office()["storage"]
    extra = {}
    if request.args.get("format") != "csv":
        # the same length of time just before: the trend the office asks about
        length = end - start
        p_end = start - timedelta(days=1)
        p_start = p_end - length
        now_ = queries.blocks_by_category(st, start, end, district)
        prev = queries.blocks_by_category(st, p_start, p_end, district)
        cats = sorted(set(now_) | set(prev), key=lambda c: (-now_.get(c, 0), c))
        label = {c: words.category(c, g.lang) for c in cats}
        per_day = queries.blocks_per_day(st, start, end, district)
        extra = {
            "chart_days": charts.columns(
                [(f"{d[8:10]}/{d[5:7]}", n) for d, n in per_day],
                title=translate("Blocked per day", g.lang)),
            "chart_categories": charts.bars(
                [(label[c], now_.get(c, 0)) for c in cats[:12]],
                previous={label[c]: prev.get(c, 0) for c in cats[:12]},
                title=translate("Blocked per category, against the previous period", g.lang)),
            "trend": {"now": sum(now_.values()), "prev": sum(prev.values()),
                      "p_start": p_start, "p_end": p_end},
        }
    return _render("blocks", translate("Blocks", g.lang),
                   queries.blocks(st, start, end, district),
                   start=start, end=end, stamp=f"{start}_{end}", district=district,
                   districts=sorted({s.district for s in st.schools()}), **extra)


@bp.get("/school/<school_id>")
@login_required
def school(school_id: str):
    st = _office()["storage"]
    s = st.school(school_id)
    if s is None:
        abort(404, translate("No such school.", g.lang))
    start, end = _range()
    detail = queries.school_detail(st, school_id, start, end)
    keys = st.keys(school_id)
    return render_template("office/school.html", s=s, d=detail, start=start, end=end,
                           keys=keys, local=_local, tier=lambda gid: words.tier(gid, g.lang),
                           args=request.args)


@bp.get("/top")
@login_required
def top():
    start, end = _range()
    return _render("top", translate("Top categories", g.lang),
                   queries.top(_office()["storage"], start, end), start=start, end=end,
                   stamp=f"{start}_{end}")


@bp.get("/bypass")
@login_required
def bypass():
    start, end = _range()
    return _render("bypass", translate("Bypass", g.lang),
                   queries.bypass(_office()["storage"], start, end), start=start, end=end,
                   stamp=f"{start}_{end}")


@bp.get("/lists")
@login_required
def lists():
    return _render("lists", translate("List freshness", g.lang),
                   queries.freshness(_office()["storage"], datetime.now(UTC)))


def _period() -> document.Period:
    today = _today()
    kind = request.args.get("kind") or "year"
    try:
        year = int(request.args.get("year") or (
            (today.year if today.month == 12 else today.year - 1) if kind == "year"
            else today.year))
        default_n = {"quarter": (today.month - 1) // 3 + 1, "month": today.month}.get(kind, 0)
        n = int(request.args.get("n") or default_n)
        return document.Period(kind, year, n)
    except ValueError as exc:
        abort(400, f"period: {exc}")


_NUMBER = re.compile(r"^[0-9A-Za-z./-]{0,20}$")


@bp.get("/report")
@bp.get("/yearly")
@login_required
def report():
    """The periodic report: a page, and the document as PDF, XLSX, CSV or printable HTML."""
    storage = _office()["storage"]
    period = _period()
    district = request.args.get("district") or None
    number = request.args.get("number", "")
    if not _NUMBER.match(number):
        abort(400, "number: digits, letters, '.', '/' or '-' (at most 20)")
    data = document.build(storage, period, district)
    settings = document.OfficeSettings.load(storage)
    issued = _today()
    fmt = request.args.get("format", "")
    stamp = period.stamp + (f"-{district}" if district else "")
    fname = f"bao-cao-{stamp}"
    if fmt == "csv":
        try:
            t = data.tables[int(request.args.get("table", "0"))]
        except (ValueError, IndexError):
            abort(400, "no such table")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(t.columns)
        w.writerows([[_cell(v) for v in row] for row in t.rows])
        if t.total:
            w.writerow([_cell(v) for v in t.total])
        part = _ascii(f"{fname}-{request.args.get('table', '0')}")
        return Response("\ufeff" + buf.getvalue(), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename={part}.csv"})
    if fmt in ("html", "pdf"):
        html = document.render_html(data, settings, issued=issued, number=number)
        if fmt == "html":
            return html
        body = render.pdf(html, engine=_office().get("pdf_engine", "auto"))
        return Response(body, mimetype="application/pdf", headers={
            "Content-Disposition": f"attachment; filename={_ascii(fname)}.pdf"})
    if fmt == "xlsx":
        body = render.xlsx(data, settings, issued=issued, number=number)
        return Response(body, mimetype="application/vnd.openxmlformats-officedocument."
                                        "spreadsheetml.sheet", headers={
            "Content-Disposition": f"attachment; filename={_ascii(fname)}.xlsx"})
    if fmt:
        abort(400, "format: csv, html, pdf or xlsx")
    districts = sorted({s.district for s in storage.schools()})
    return render_template("office/report.html", d=data, period=period, district=district,
                           districts=districts, args=request.args, num=document._num,
                           pct=document._pct, settings=settings)


def _ascii(name: str) -> str:
    """A file name any browser accepts in Content-Disposition."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    return re.sub(r"[^A-Za-z0-9._-]+", "-", plain.encode("ascii", "ignore").decode()).strip("-")


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def office_settings():
    """What the documents say about the office: agency, number symbol, place, signer."""
    storage = _office()["storage"]
    saved = False
    if request.method == "POST":
        if session.get("role") != "admin":
            abort(403, translate("Only administrators can do this.", g.lang))
        values = {k: request.form.get(k, "").strip()[:200]
                  for k in document.OfficeSettings.FIELDS}
        storage.set_settings(values)
        saved = True
    return render_template("office/settings.html", s=document.OfficeSettings.load(storage),
                           fields=document.OfficeSettings.FIELDS, saved=saved)


@bp.route("/schools", methods=["GET", "POST"])
@login_required
def schools():
    storage = _office()["storage"]
    issued = error = None
    if request.method == "POST":
        if session.get("role") != "admin":
            abort(403, translate("Only administrators can do this.", g.lang))
        fields = [request.form.get(k, "").strip() for k in ("id", "name", "district", "province")]
        if not all(fields):
            error = translate("All fields are required.", g.lang)
        else:
            try:
                issued = enrol_school(storage, *fields)
            except (DuplicateSchool, StorageError, ValueError) as exc:
                error = str(exc)
    return render_template("office/schools.html", schools=storage.schools(), issued=issued,
                           error=error), (400 if error else 200)
