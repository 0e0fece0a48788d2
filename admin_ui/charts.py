"""Bar charts as plain data for inline SVG drawn by the templates (no CDN, no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    width: float   # 0..100, share of the longest bar
    y: int         # row offset in the SVG


@dataclass(frozen=True, slots=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    height: int

    @property
    def empty(self) -> bool:
        return not self.bars


ROW = 22


def bar_chart(title: str, rows: list[tuple[str, int]], limit: int = 12) -> BarChart:
    rows = sorted(rows, key=lambda r: (-r[1], r[0]))[:limit]
    top = max((v for _, v in rows), default=0) or 1
    bars = tuple(Bar(label or "—", int(v), round(100.0 * v / top, 1), i * ROW)
                 for i, (label, v) in enumerate(rows))
    return BarChart(title, bars, max(ROW, len(bars) * ROW))


@dataclass(frozen=True, slots=True)
class Column:
    label: str
    value: int
    height: float  # 0..100
    x: float       # 0..100


def column_chart(rows: list[tuple[str, int]]) -> tuple[Column, ...]:
    """Columns for a time series (hours of a day or days of a week), in the given order."""
    top = max((v for _, v in rows), default=0) or 1
    n = max(1, len(rows))
    return tuple(Column(label, int(v), round(100.0 * v / top, 1), round(100.0 * i / n, 2))
                 for i, (label, v) in enumerate(rows))
