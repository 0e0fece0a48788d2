"""Dates and times as people read them: in the school's zone, one format per language.

Vietnamese: "Thứ Tư, 02/12/2026 08:11" (day first, 24-hour clock, as forms and
official letters write it); English: "Wed 2 Dec 2026, 08:11". The same function
serves the block page, the why page, the admin tables, the CLI and the office,
so no two pages show the same moment in two shapes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

SCHOOL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
DAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")


def _local(value: datetime | float | int, tz: tzinfo | None) -> datetime:
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(float(value), UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz or SCHOOL_TZ)


def format_datetime(value: datetime | float | int | None, lang: str = "vi",
                    tz: tzinfo | None = None, *, weekday: bool = False,
                    seconds: bool = False) -> str:
    """A moment (aware datetime or Unix time) in the school's zone; "" for None."""
    if value is None or value == "":
        return ""
    t = _local(value, tz)
    clock = f"{t:%H:%M:%S}" if seconds else f"{t:%H:%M}"
    if lang == "en":
        text = f"{t.day} {_MONTHS_EN[t.month - 1]} {t.year}, {clock}"
        return f"{DAYS_EN[t.weekday()][:3]} {text}" if weekday else text
    text = f"{t:%d/%m/%Y} {clock}"
    return f"{DAYS_VI[t.weekday()]}, {text}" if weekday else text


def format_date(value: date | datetime | float | int | None, lang: str = "vi",
                tz: tzinfo | None = None) -> str:
    """A day: "02/12/2026" / "2 Dec 2026"."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime | int | float):
        value = _local(value, tz).date()
    if lang == "en":
        return f"{value.day} {_MONTHS_EN[value.month - 1]} {value.year}"
    return f"{value:%d/%m/%Y}"


def format_time(value: datetime | float | int | None, lang: str = "vi",
                tz: tzinfo | None = None) -> str:
    """A time of day in the school's zone: "08:11" (both languages)."""
    if value is None or value == "":
        return ""
    return f"{_local(value, tz):%H:%M}"


def format_duration(seconds: float, lang: str = "vi") -> str:
    """"45 phút" / "45 min"; "1 giờ 30 phút" / "1 h 30 min"."""
    minutes = max(0, round(seconds / 60))
    h, m = divmod(minutes, 60)
    if lang == "en":
        return f"{h} h {m} min" if h and m else (f"{h} h" if h else f"{m} min")
    return f"{h} giờ {m} phút" if h and m else (f"{h} giờ" if h else f"{m} phút")
