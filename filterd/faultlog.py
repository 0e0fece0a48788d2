"""Logging under faults: one line when something starts going wrong, then counts.

A fault that lasts (a link down, a full disk, a bug hit by every query) must not
write a line, let alone a traceback, per query: an SD card fills and the one line
that matters scrolls away. `Throttled` logs the first occurrence (with its
traceback, if it is an unexpected exception), then at most one summary line per
`every` seconds with how many more there were; every occurrence is counted in
`filterd_internal_errors_total{where=...}` for the metrics endpoint.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from filterd import metrics

SUMMARY_EVERY = 300.0


class Throttled:
    """A logger for one kind of fault (`where`): first occurrence in full, then counts."""

    __slots__ = ("count", "every", "logged_at", "logger", "unlogged", "where")

    def __init__(self, logger: logging.Logger, where: str, every: float = SUMMARY_EVERY
                 ) -> None:
        self.logger = logger
        self.where = where
        self.every = every
        self.logged_at: float | None = None
        self.unlogged = 0
        self.count = 0

    def exception(self, msg: str, *args: Any) -> None:
        """Inside an `except`: counted; the first one with its traceback, then summaries."""
        self._emit(logging.ERROR, msg, args, exc_info=True)

    def warning(self, msg: str, *args: Any) -> None:
        self._emit(logging.WARNING, msg, args, exc_info=False)

    def _emit(self, level: int, msg: str, args: tuple, exc_info: bool) -> None:
        self.count += 1
        metrics.INTERNAL_ERRORS.inc(where=self.where)
        now = time.monotonic()
        if self.logged_at is None:
            self.logged_at = now
            self.logger.log(level, msg, *args, exc_info=exc_info)
            return
        self.unlogged += 1
        if now - self.logged_at >= self.every:
            tail = f" ({self.unlogged} times in the last {now - self.logged_at:.0f} s; the " \
                "first is logged above)"
            self.logger.log(level, msg + tail.replace("%", "%%"), *args)
            self.logged_at = now
            self.unlogged = 0
