"""Named weekly schedules (e.g. class hours Mon–Sat 07:00–11:30 and 13:30–17:00).

A schedule is a set of weekly windows evaluated in the school's time zone. A
window whose end is earlier than its start runs across midnight into the next
day (Saturday 22:00-06:00 ends on Sunday 06:00; Sunday night wraps to Monday).
Windows of one schedule must not overlap: an overlap is almost always a typing
mistake, so it is an error that names the line.

At load time a schedule becomes a 10080-entry bytearray (one byte per minute of
the week), so "is it active now?" is one index operation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from filterd.errors import CodedValueError
from filterd.words.messages import type_code
from filterd.yamlsrc import Problems, YList, YMap

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_WEEK = 7 * 1440
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
_DAY_WORDS = {"daily": DAYS, "everyday": DAYS, "all": DAYS, "weekdays": DAYS[:5],
              "weekend": DAYS[5:]}


@dataclass(frozen=True, slots=True)
class Window:
    days: tuple[int, ...]   # 0 = Monday
    start: int              # minute of the day
    end: int                # minute of the day; <= start means "next day"
    line: int

    def text(self) -> str:
        days = ",".join(DAYS[d] for d in self.days)
        return (f"{days} {self.start // 60:02d}:{self.start % 60:02d}-"
                f"{self.end // 60:02d}:{self.end % 60:02d}")


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    label_vi: str
    label_en: str
    windows: tuple[Window, ...]
    file: str
    line: int
    minutes: bytes          # MINUTES_PER_WEEK bytes, 1 where active

    def active_at_minute(self, minute_of_week: int) -> bool:
        return self.minutes[minute_of_week] == 1

    def active(self, at: datetime, tz: tzinfo) -> bool:
        return self.minutes[minute_of_week(at, tz)] == 1

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_vi

    def change_in(self) -> tuple[int, ...] | None:
        """Per minute of the week, whole minutes from its start until the state changes;
        None for a schedule that never changes (always or never active)."""
        m = self.minutes
        if 0 not in m or 1 not in m:
            return None
        n = len(m)
        out = [0] * n
        nxt = 0
        for i in range(2 * n - 1, -1, -1):   # twice around the week: wraps at Sunday night
            j = i % n
            nxt = 1 if m[j] != m[(j + 1) % n] else nxt + 1
            if i < n:
                out[j] = nxt
        return tuple(out)


def minute_of_week(at: datetime, tz: tzinfo) -> int:
    local = at.astimezone(tz)
    return local.weekday() * 1440 + local.hour * 60 + local.minute


def _parse_days(value: object) -> tuple[int, ...]:
    if isinstance(value, list):
        parts = value
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        raise CodedValueError("schedule.days_shape", got_type=type_code(value))
    out: set[int] = set()
    for part in parts:
        if not isinstance(part, str) or not part:
            raise CodedValueError("schedule.day", value=part)
        p = part.strip().lower()
        if p in _DAY_WORDS:
            out.update(DAYS.index(d) for d in _DAY_WORDS[p])
        elif "-" in p:
            a, _, b = p.partition("-")
            if a not in DAYS or b not in DAYS:
                raise CodedValueError("schedule.day_range", value=part)
            i, j = DAYS.index(a), DAYS.index(b)
            if j < i:
                raise CodedValueError("schedule.day_backwards", value=part)
            out.update(range(i, j + 1))
        elif p in DAYS:
            out.add(DAYS.index(p))
        else:
            raise CodedValueError("schedule.day", value=part)
    if not out:
        raise CodedValueError("schedule.no_days")
    return tuple(sorted(out))


def _parse_time(text: str) -> int:
    m = _TIME.match(text.strip())
    if not m:
        raise CodedValueError("schedule.time", value=text)
    h, mi = int(m.group(1)), int(m.group(2))
    if h == 24 and mi:
        raise CodedValueError("schedule.time", value=text)
    return h * 60 + mi


def parse_span(text: object) -> tuple[int, int]:
    """'07:00-11:30' -> (420, 690). End before start = across midnight."""
    if not isinstance(text, str) or text.count("-") != 1:
        raise CodedValueError("schedule.span", value=text)
    a, b = text.split("-")
    start, end = _parse_time(a), _parse_time(b)
    if start == 1440:
        raise CodedValueError("schedule.span_24", value=text)
    if start == end:
        raise CodedValueError("schedule.span_empty", value=text)
    return start, end


def _window_minutes(w: Window) -> list[tuple[int, int]]:
    """Half-open [a, b) minute-of-week intervals for a window (wrapping the week)."""
    out = []
    for d in w.days:
        a = d * 1440 + w.start
        length = (w.end - w.start) if w.end > w.start else (1440 - w.start + w.end)
        b = a + length
        if b <= MINUTES_PER_WEEK:
            out.append((a, b))
        else:
            out.append((a, MINUTES_PER_WEEK))
            out.append((0, b - MINUTES_PER_WEEK))
    return out


def parse_schedule(sid: str, raw: object, file: str, where: YMap, problems: Problems
                   ) -> Schedule | None:
    path = f"schedules.{sid}"
    if not isinstance(raw, YMap):
        problems.add("schedule.shape", where, sid, path=path, got_type=type_code(raw))
        return None
    for k in raw:
        if k not in ("label_vi", "label_en", "windows"):
            problems.add("shape.unknown_key", raw, k, path=f"{path}.{k}",
                         known="label_en, label_vi, windows")
    labels = {}
    for k in ("label_vi", "label_en"):
        v = raw.get(k, sid)
        if not isinstance(v, str) or not v:
            problems.add("schedule.text", raw, k, path=f"{path}.{k}")
        labels[k] = v if isinstance(v, str) else sid
    windows_raw = raw.get("windows")
    if not isinstance(windows_raw, YList) or not windows_raw:
        problems.add("schedule.windows", raw,
                     "windows" if "windows" in raw else None, path=f"{path}.windows")
        return None
    windows: list[Window] = []
    minutes = bytearray(MINUTES_PER_WEEK)
    owner: dict[int, int] = {}
    ok = True
    for i, w in enumerate(windows_raw):
        wpath = f"{path}.windows[{i + 1}]"
        if not isinstance(w, YMap):
            problems.add("schedule.window", windows_raw, i, path=wpath, got_type=type_code(w))
            ok = False
            continue
        for k in w:
            if k not in ("days", "times"):
                problems.add("shape.unknown_key", w, k, path=f"{wpath}.{k}", known="days, times")
                ok = False
        try:
            days = _parse_days(w.get("days"))
        except ValueError as exc:
            problems.add_error(exc, w, "days" if "days" in w else None, path=f"{wpath}.days")
            ok = False
            continue
        times = w.get("times")
        if isinstance(times, str):
            times = [times]
        if not isinstance(times, list) or not times:
            problems.add("schedule.times", w,
                         "times" if "times" in w else None, path=f"{wpath}.times")
            ok = False
            continue
        for j, span in enumerate(times):
            line = times.line_of(j) if isinstance(times, YList) else w.line_of("times")
            try:
                start, end = parse_span(span)
            except ValueError as exc:
                problems.add_error(exc, line=line, file=file, path=f"{wpath}.times")
                ok = False
                continue
            win = Window(days, start, end, line)
            for a, b in _window_minutes(win):
                clash = next((m for m in range(a, b) if minutes[m]), None)
                if clash is not None:
                    other = owner[clash]
                    day = DAYS[clash // 1440]
                    hm = f"{clash % 1440 // 60:02d}:{clash % 60:02d}"
                    problems.add("schedule.overlap", file=file, line=line,
                                 path=f"{wpath}.times", value=span, other=other, day=day,
                                 time=hm)
                    ok = False
                    break
                for m in range(a, b):
                    minutes[m] = 1
                    owner[m] = line
            windows.append(win)
    if not ok:
        return None
    return Schedule(sid, labels["label_vi"], labels["label_en"], tuple(windows), file,
                    where.line_of(sid), bytes(minutes))
