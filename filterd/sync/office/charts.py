"""Charts drawn on the server as inline SVG: no script, nothing fetched, prints as is.

Each function returns SVG markup (text) for a list of (label, value); labels are
escaped. The SVG scales to its container (viewBox, width 100%), so it fits 390 px
phones and wide screens alike.
"""

from __future__ import annotations

from html import escape

BAR = "#0b4f8a"
PREV = "#9bb7d4"


def _fmt(n: float) -> str:
    return f"{int(n):,}".replace(",", ".")


def bars(items: list[tuple[str, float]], *, title: str, previous: dict[str, float] | None = None,
         width: int = 640) -> str:
    """Horizontal bars, one row per label (with the previous period as a thin bar)."""
    if not items:
        return ""
    row, label_w, pad = 26, int(width * 0.42), 8
    top = max(max(v for _, v in items), max((previous or {}).values(), default=0)) or 1
    h = row * len(items) + 2 * pad
    out = [f'<svg class="chart" viewBox="0 0 {width} {h}" width="100%" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    span = width - label_w - 90
    for i, (label, value) in enumerate(items):
        y = pad + i * row
        w = max(1, int(span * value / top)) if value else 0
        short = label if len(label) <= 30 else label[:29].rstrip() + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">'
                   f"<title>{escape(label)}</title>{escape(short)}</text>")
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="14" fill="{BAR}"/>')
        if previous is not None:
            pw = int(span * previous.get(label, 0) / top)
            out.append(f'<rect x="{label_w}" y="{y + 18}" width="{pw}" height="4" '
                       f'fill="{PREV}"/>')
        out.append(f'<text x="{label_w + w + 4}" y="{y + 15}" font-size="12">{_fmt(value)}</text>')
    out.append("</svg>")
    return "".join(out)


def columns(items: list[tuple[str, float]], *, title: str, width: int = 640,
            height: int = 180) -> str:
    """Vertical columns over time (one per day), first and last label written below."""
    if not items:
        return ""
    pad_b, pad_t = 22, 10
    top = max(v for _, v in items) or 1
    step = width / len(items)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{escape(title)}</title>"]
    base = height - pad_b
    for i, (label, value) in enumerate(items):
        h = (base - pad_t) * value / top
        out.append(f'<rect x="{i * step + 1:.1f}" y="{base - h:.1f}" width="{max(1, step - 2):.1f}"'
                   f' height="{h:.1f}" fill="{BAR}"><title>{escape(label)}: {_fmt(value)}'
                   "</title></rect>")
    out.append(f'<line x1="0" y1="{base}" x2="{width}" y2="{base}" stroke="#555"/>')
    out.append(f'<text x="0" y="{height - 6}" font-size="12">{escape(items[0][0])}</text>')
    out.append(f'<text x="{width}" y="{height - 6}" font-size="12" text-anchor="end">'
               f"{escape(items[-1][0])}</text>")
    out.append(f'<text x="{width}" y="{pad_t + 2}" font-size="12" text-anchor="end">'
               f"max {_fmt(top)}</text>")
    out.append("</svg>")
    return "".join(out)
