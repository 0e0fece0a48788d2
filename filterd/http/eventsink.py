"""Where the HTTP side reports what it blocked or enforced.

filterd.state.events.EventLog satisfies this protocol; until the
daemon passes one in, NullSink keeps the proxy running and MemorySink serves tests.
The URL and the search term are only known, and only recorded, when intercepted.
"""

from __future__ import annotations

import inspect
import threading
from typing import Protocol

from filterd.policy.decision import Decision, Query


class EventSink(Protocol):
    def record(self, decision: Decision, query: Query) -> None: ...


class NullSink:
    def record(self, decision: Decision, query: Query, **extra: object) -> None:
        pass


class MemorySink:
    """Keeps every record in a list (tests)."""

    def __init__(self) -> None:
        self.records: list[tuple[Decision, Query, dict]] = []
        self._lock = threading.Lock()

    def record(self, decision: Decision, query: Query, **extra: object) -> None:
        with self._lock:
            self.records.append((decision, query, extra))


def record(
    sink: EventSink, decision: Decision, query: Query, *, search_term: str | None = None
) -> None:
    """Record through any sink; the search term only reaches sinks that accept it."""
    if search_term is not None and _accepts_search_term(sink):
        sink.record(decision, query, search_term=search_term)  # type: ignore[call-arg]
    else:
        sink.record(decision, query)


def _accepts_search_term(sink: EventSink) -> bool:
    try:
        params = inspect.signature(sink.record).parameters
    except (TypeError, ValueError):
        return False
    return "search_term" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
