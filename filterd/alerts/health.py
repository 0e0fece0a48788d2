"""Appliance health alerts for the IT staff (the policy's `alerts.health_to` roles).

Checked once a minute from the deliverer's pass; each problem alerts at most once per
`window` (default 6 h) while it lasts:
- upstreams: every upstream resolver is marked down;
- lists_stale: the compiled list index is older than `lists_max_age` hours;
- feeds_stale: the education office's feeds were not pulled without a problem for
  `lists_max_age` hours (an appliance that has feeds; the last good ones keep working);
- disk: the data directory's file system has less than `disk_min_free` % free;
- events_dropped: the event queue overflowed and events were not logged;
- reload_refused: a reload was refused (raised at once by the daemon).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filterd.state import alerts as store

log = logging.getLogger(__name__)


class HealthChecks:
    def __init__(self, db_of: Callable[[], Any], data_dir: Path, *,
                 upstreams_down: Callable[[], str | None] | None = None,
                 dropped: Callable[[], int] | None = None, lists_max_age: float = 48.0,
                 disk_min_free: float = 10.0, window: float = 6 * 3600.0,
                 every: float = 60.0, on_raise: Callable[[int], None] | None = None) -> None:
        self.db_of = db_of
        self.data_dir = Path(data_dir)
        self.upstreams_down = upstreams_down
        self.dropped = dropped
        self.lists_max_age = lists_max_age
        self.disk_min_free = disk_min_free
        self.window = window
        self.every = every
        self.on_raise = on_raise
        self._next = 0.0
        self._dropped_seen = dropped() if dropped else 0

    def raise_(self, problem: str, detail: str, now: float | None = None) -> int | None:
        aid = store.raise_health(self.db_of(), problem, detail, now=now or time.time(),
                                 window=self.window)
        if aid is not None:
            log.warning("health alert %s: %s", problem, detail)
            if self.on_raise:
                self.on_raise(aid)
        return aid

    def problems(self, now: float) -> list[tuple[str, str]]:
        out = []
        if self.upstreams_down is not None:
            down = self.upstreams_down()
            if down:
                out.append(("upstreams", down))
        current = self.data_dir / "lists" / "current"
        try:
            age = (now - current.stat().st_mtime) / 3600
        except OSError:
            age = None
        if age is not None and age > self.lists_max_age:
            out.append(("lists_stale", f"cập nhật lần cuối {age:.0f} giờ trước "
                                       f"(ngưỡng {self.lists_max_age:.0f} giờ)"))
        from datetime import UTC, datetime

        from filterd.sync.feedpull import hours_since_ok

        feeds_age = hours_since_ok(self.data_dir / "feeds", datetime.fromtimestamp(now, UTC))
        if feeds_age is not None and feeds_age > self.lists_max_age:
            since = ("chưa lần nào" if feeds_age == float("inf")
                     else f"lần cuối {feeds_age:.0f} giờ trước")
            out.append(("feeds_stale", f"tải danh sách của Phòng/Sở thành công {since} "
                                       f"(ngưỡng {self.lists_max_age:.0f} giờ)"))
        try:
            du = shutil.disk_usage(self.data_dir)
            free = 100.0 * du.free / du.total if du.total else 100.0
        except OSError:
            free = 100.0
        if free < self.disk_min_free:
            out.append(("disk", f"còn trống {free:.1f}% ({du.free // 2**20} MiB) ở "
                                f"{self.data_dir}"))
        if self.dropped is not None:
            n = self.dropped()
            if n > self._dropped_seen:
                out.append(("events_dropped", f"{n - self._dropped_seen} sự kiện bị bỏ "
                                              "từ lần kiểm tra trước"))
            self._dropped_seen = n
        return out

    def __call__(self, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self.every
        for problem, detail in self.problems(now):
            self.raise_(problem, detail, now)
