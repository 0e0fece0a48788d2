"""Health alert `feeds_stale`: the office's feeds not pulled without a problem for long."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from filterd.alerts.health import HealthChecks
from filterd.sync.feedpull import hours_since_ok
from filterd.words import term

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _status(tmp_path, **kinds):
    (tmp_path / "feeds").mkdir(exist_ok=True)
    (tmp_path / "feeds" / "status.json").write_text(json.dumps(kinds))


def _problems(tmp_path):
    h = HealthChecks(lambda: None, tmp_path, lists_max_age=48)
    return [p for p, _ in h.problems(NOW.timestamp())]


def test_no_feeds_no_alert(tmp_path):
    assert hours_since_ok(tmp_path / "feeds", NOW) is None
    assert "feeds_stale" not in _problems(tmp_path)
    _status(tmp_path, protected={"version": None, "ok_at": None})
    assert "feeds_stale" not in _problems(tmp_path)


def test_recent_pull_no_alert(tmp_path):
    _status(tmp_path, protected={"version": 3, "ok_at": "2026-12-01T11:45:00Z"},
            deny={"version": None, "ok_at": "2026-12-01T11:45:00Z"})
    assert 0.2 < hours_since_ok(tmp_path / "feeds", NOW) < 0.3
    assert "feeds_stale" not in _problems(tmp_path)


def test_three_days_of_failed_pulls_alert_it(tmp_path):
    _status(tmp_path, protected={"version": 3, "ok_at": "2026-11-28T11:00:00Z",
                                 "error": "office unreachable"})
    assert "feeds_stale" in _problems(tmp_path)
    assert "Phòng/Sở" in term("alert_problem", "feeds_stale", "vi")
    assert "office" in term("alert_problem", "feeds_stale", "en")
