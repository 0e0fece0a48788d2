"""Dashboard: blocks by category and group over the day and week, top names, bypass, health."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton
from flask import Blueprint, render_template
from flask_babel import get_timezone, gettext

from admin_ui.blueprints import control
from admin_ui.charts import bar_chart, column_chart
from admin_ui.security import ALL_ROLES, roles_required
from admin_ui.web import backend, db, lang
from filterd.state import eventquery
from filterd.state.db import table_exists

bp = Blueprint("dashboard", __name__)


def _school_tz() -> ZoneInfo:
    return ZoneInfo(str(get_timezone()))




def _upload_status() -> dict:
    """The daily upload to the education office, from the sync job's own files
    (docs/dev/CONTRACTS.md: `<data_dir>/sync/state.json`, pending reports in `outbox/`)."""
    data_dir = Path(backend().data_dir)
    try:
        state = json.loads((data_dir / "sync" / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    last = None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        last = datetime.fromisoformat(state["last_success_at"]).timestamp()
    configured = bool(getattr(getattr(backend().config, "sync", None), "office_url", ""))
    pending = len(list((data_dir / "outbox").glob("*.json.gz")))
    return {"configured": configured, "last": last, "pending": pending,
            "error": state.get("last_error") if pending else None,
            # a day's report waits for the next morning; two days late means something broke
            "warn": configured and (last is None or time.time() - last > 2 * 86400
                                    or pending > 1)}


@bp.route("/")
@roles_required(*ALL_ROLES)
def index():
    now = datetime.now(UTC)
    day_start = now - timedelta(hours=23)
    local_now = now.astimezone(_school_tz())
    # 7 local days, today included
    week_from = (local_now - timedelta(days=6)).replace(hour=0, minute=0, second=0, microsecond=0)
    cats = backend().categories()
    lng = lang()
    group_labels = {grp.id: grp.label(lng) for grp in backend().groups()}

    def cat_label(cid: str) -> str:
        info = cats.get(cid) or {}
        return info.get(lng) or cid or gettext("(none)")

    charts = {}
    hourly = []
    daily = []
    totals = {"day": 0, "week": 0}
    has_counts = table_exists(db(), "counts")
    if has_counts:
        for span, since in (("day", day_start), ("week", week_from)):
            by_cat = eventquery.blocks_by(db(), "category", since)
            by_group = eventquery.blocks_by(db(), "group_id", since)
            totals[span] = sum(v for _, v in by_cat)
            charts[f"cat_{span}"] = bar_chart(gettext("Blocks by category"),
                                              [(cat_label(c), v) for c, v in by_cat])
            charts[f"group_{span}"] = bar_chart(gettext("Blocks by group"),
                                                [(group_labels.get(g, g), v) for g, v in by_group])
        # The counts table is in UTC hours; the charts speak the school's local time.
        tz = _school_tz()
        per_hour = eventquery.blocks_per_hour(db(), week_from)
        this_hour = now.replace(minute=0, second=0, microsecond=0)
        hours = [this_hour - timedelta(hours=23 - i) for i in range(24)]
        hourly = column_chart([(h.astimezone(tz).strftime("%H"), per_hour.get(h, 0))
                               for h in hours])
        per_day: dict[str, int] = {}
        for start, n in per_hour.items():
            day = start.astimezone(tz).strftime("%Y-%m-%d")
            per_day[day] = per_day.get(day, 0) + n
        days = [(now.astimezone(tz) - timedelta(days=6 - i)).date() for i in range(7)]
        # day and month in the reader's order: 29/11 in Vietnamese, 11/29 in English
        daily = column_chart([(format_skeleton("Md", d, locale=lng),
                               per_day.get(d.isoformat(), 0)) for d in days])

    top_names: list[tuple[str, int]] = []
    bypass = {"day": 0, "week": 0}
    has_events = table_exists(db(), "events")
    if has_events:
        week_ts = week_from.timestamp()
        top_names = eventquery.top_blocked_names(db(), week_ts, 10)
        for span, since in (("day", time.time() - 86400), ("week", week_ts)):
            bypass[span] = eventquery.bypass_count(db(), since)

    lists = backend().lists_status()
    usage = shutil.disk_usage(backend().data_dir)
    health = {
        "daemon_pid": backend().daemon_pid(),
        "lists_version": lists.get("version"),
        "lists_updated": lists.get("updated"),
        "lists_age_h": (time.time() - lists["updated"]) / 3600 if lists.get("updated") else None,
        "lists_error": lists.get("error"),
        "disk_free_pct": 100.0 * usage.free / usage.total if usage.total else 0.0,
        "disk_free_gb": usage.free / 1e9,
        "upstreams": backend().upstream_health(),
        "event_log": backend().event_log_health(),
    }
    return render_template("dashboard.html", charts=charts, hourly=hourly, daily=daily,
                           totals=totals, top_names=top_names, bypass=bypass, health=health,
                           has_counts=has_counts, has_events=has_events,
                           upload=_upload_status(), control=control.state())
