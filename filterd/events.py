"""Moved to filterd.state.events; this name stays only while branches move over (remove soon)."""

from filterd.state.events import (  # noqa: F401
    EVENT_COLUMNS,
    EventLog,
    event_row,
    hour_of,
    init_db,
    lower_priority,
    open_event_log,
)
