"""The hour key of the `counts` table: UTC hours as "YYYY-MM-DDTHH" (sorts as text)."""

from __future__ import annotations

from datetime import UTC, datetime

HOUR_FORMAT = "%Y-%m-%dT%H"

__all__ = ["HOUR_FORMAT", "hour_key", "hour_of", "parse_hour"]


def hour_key(at: datetime) -> str:
    """The key of the UTC hour `at` falls in (an aware datetime, any zone)."""
    if at.tzinfo is None:
        raise ValueError("hour_key needs an aware datetime")
    return at.astimezone(UTC).strftime(HOUR_FORMAT)


def hour_of(ts: float) -> str:
    """The key of the UTC hour of unix time `ts`."""
    return datetime.fromtimestamp(ts, UTC).strftime(HOUR_FORMAT)


def parse_hour(key: str) -> datetime:
    """The start of the hour a key names, as an aware UTC datetime."""
    return datetime.strptime(key, HOUR_FORMAT).replace(tzinfo=UTC)
