"""Schedules: day and time parsing, windows across midnight and the week's end, overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.policy.schedules import DAYS, minute_of_week, parse_schedule, parse_span
from filterd.yamlsrc import Problems, loads

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def schedule(windows_yaml: str):
    doc = loads(f"s:\n  windows:\n{windows_yaml}", "sched.yaml")
    problems = Problems()
    s = parse_schedule("s", doc["s"], "sched.yaml", doc, problems)
    return s, problems


def test_spans():
    assert parse_span("07:00-11:30") == (420, 690)
    assert parse_span("22:00-06:00") == (1320, 360)
    assert parse_span("00:00-24:00") == (0, 1440)
    for bad in ("7-11", "07:00", "25:00-26:00", "07:60-08:00", "08:00-08:00", "24:00-01:00"):
        with pytest.raises(ValueError):
            parse_span(bad)


def test_class_hours_minutes():
    s, problems = schedule('    - days: mon-sat\n      times: ["07:00-11:30", "13:30-17:00"]\n')
    assert not problems and s is not None
    active = {d: [m for m in range(1440) if s.minutes[d * 1440 + m]] for d in range(7)}
    for d in range(6):
        assert len(active[d]) == 270 + 210
    assert active[6] == []


def test_across_midnight_and_week_end():
    s, _ = schedule('    - days: sun\n      times: "22:00-06:00"\n')
    # Sunday 22:00 .. Monday 06:00 (wraps the week)
    assert s.minutes[6 * 1440 + 22 * 60] and s.minutes[6 * 1440 + 1439]
    assert s.minutes[0] and s.minutes[5 * 60 + 59] and not s.minutes[6 * 60]
    assert not s.minutes[6 * 1440 + 21 * 60 + 59]


def test_overlap_is_an_error_even_across_midnight():
    _, problems = schedule('    - days: mon\n      times: ["22:00-02:00"]\n'
                           '    - days: tue\n      times: ["01:00-03:00"]\n')
    (err,) = problems.errors
    assert "overlaps the window on line 4" in err.message and err.line == 6
    assert "tue 01:00" in err.message


def test_day_words():
    s, _ = schedule('    - days: [weekend]\n      times: "08:00-09:00"\n')
    assert [d for d in range(7) if s.minutes[d * 1440 + 8 * 60]] == [5, 6]
    s, _ = schedule('    - days: "mon, wed,fri"\n      times: "08:00-09:00"\n')
    assert [d for d in range(7) if s.minutes[d * 1440 + 8 * 60]] == [0, 2, 4]


@pytest.mark.parametrize("days", ["sat-mon", "funday", "[]", "5"])
def test_bad_days(days):
    _, problems = schedule(f'    - days: {days}\n      times: "08:00-09:00"\n')
    assert problems and problems.errors[0].key == "schedules.s.windows[1].days"


def test_minute_of_week_uses_local_time():
    # Sunday 2026-11-29 17:30 UTC = Monday 00:30 in Hà Nội
    assert minute_of_week(datetime(2026, 11, 29, 17, 30, tzinfo=UTC), HCM) == 30
    sunday_utc = datetime(2026, 11, 29, 17, 30, tzinfo=UTC)
    assert minute_of_week(sunday_utc, UTC) == 6 * 1440 + 17 * 60 + 30


def _naive_active(day: int, start: int, end: int, t: datetime) -> bool:
    """Reference: is local time t inside a window that starts on `day` at start..end?"""
    local = t.astimezone(HCM)
    m = local.hour * 60 + local.minute
    wd = local.weekday()
    if end > start:
        return wd == day and start <= m < end
    return (wd == day and m >= start) or (wd == (day + 1) % 7 and m < end)


@given(day=st.integers(0, 6), start=st.integers(0, 1439), length=st.integers(1, 1439),
       offset=st.integers(0, 7 * 1440 * 3))
def test_matches_a_naive_reference(day, start, length, offset):
    end = (start + length) % 1440
    if end == 0:
        end = 1440
    span = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    s, problems = schedule(f"    - days: {DAYS[day]}\n      times: \"{span}\"\n")
    assert not problems
    t = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(minutes=offset)
    assert s.active(t, HCM) == _naive_active(day, start, end, t)
