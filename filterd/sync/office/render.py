"""The report document as files: PDF (headless Chromium, or WeasyPrint), XLSX (openpyxl).

Both PDF engines print the same HTML (document.html: A4, the appendices on landscape
pages, page numbers in the top margin box). bench/office/bench_pdf.py measured them side
by side (bench/README.md, "Office report PDF"): for 300 schools (17 pages) Chromium took
10.6 s against WeasyPrint's 30.3 s (2.9x faster; at 5,000 schools that is the difference
between a download and a timeout), at twice the memory (236 against 118 MB) and a larger
file. So `auto` (the default) prints with Debian's chromium when it is installed and falls
back to WeasyPrint (pure Python, already a dependency) on a server without a browser.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from filterd.errors import FilterdError
from filterd.sync.office.document import MOTTO, NATIONAL_TITLE, OfficeSettings, ReportData

ENGINES = ("chromium", "weasyprint")


class RenderError(FilterdError):
    """The PDF could not be made (engine missing or failed)."""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pdf(html: str, *, engine: str = "auto", base_url: str | None = None) -> bytes:
    if engine == "auto":
        engine = "chromium" if chromium_path() else "weasyprint"
    if engine == "weasyprint":
        import logging

        from weasyprint import HTML

        logging.getLogger("weasyprint").setLevel(logging.ERROR)
        logging.getLogger("fontTools").setLevel(logging.ERROR)
        return HTML(string=html, base_url=base_url).write_pdf()
    if engine == "chromium":
        return _chromium_pdf(html)
    raise RenderError(f"unknown PDF engine {engine!r} (use auto, {' or '.join(ENGINES)})")


def _chromium_pdf(html: str) -> bytes:
    exe = chromium_path()
    if exe is None:
        raise RenderError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="filterd-pdf-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer",
               f"--print-to-pdf={out}", src.as_uri()]
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        if r.returncode != 0 or not out.exists():
            raise RenderError(f"chromium failed ({r.returncode}): "
                              f"{r.stderr.decode(errors='replace')[-300:]}")
        return out.read_bytes()


def xlsx(data: ReportData, settings: OfficeSettings, *, issued, number: str = "") -> bytes:
    """One sheet per table, each headed as the document is (agency, number, place and date,
    title), numbers as numbers, the totals row bold, columns wide enough to read."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    thin = Side(style="thin")
    box = Border(left=thin, right=thin, top=thin, bottom=thin)
    date_line = (f"{settings.place}, ngày {issued.day:02d} tháng {issued.month:02d} "
                 f"năm {issued.year}")
    used: set[str] = set()
    for i, t in enumerate(data.tables, start=1):
        name = re.sub(r"[\[\]:*?/\\]", "-", t.title)[:28]
        while name in used:
            name = f"{name[:26]}{i}"
        used.add(name)
        ws = wb.create_sheet(name)
        ws.append([settings.parent_agency.upper()])
        ws.append([settings.agency.upper(), None, None, NATIONAL_TITLE])
        ws.append([f"Số: {number or '    '}/{settings.symbol}", None, None, MOTTO])
        ws.append([None, None, None, date_line])
        ws.append([f"BÁO CÁO {data.period.words}"])
        ws.append([t.title])
        for r in (2, 5, 6):
            ws.cell(r, 1).font = Font(bold=True)
        ws.cell(2, 4).font = ws.cell(3, 4).font = Font(bold=True)
        ws.cell(4, 4).font = Font(italic=True)
        ws.append([])
        head = ws.max_row + 1
        ws.append(t.columns)
        for c in range(1, len(t.columns) + 1):
            cell = ws.cell(head, c)
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, horizontal="center", vertical="center")
            cell.border = box
        for row in t.rows:
            ws.append(row)
        if t.total:
            ws.append(t.total)
            for c in range(1, len(t.columns) + 1):
                ws.cell(ws.max_row, c).font = Font(bold=True)
        for r in range(head + 1, ws.max_row + 1):
            for c in range(1, len(t.columns) + 1):
                ws.cell(r, c).border = box
        for c, title in enumerate(t.columns, start=1):
            longest = max([len(str(title)) // 2 + 2] +
                          [len(str(row[c - 1])) + 2 for row in t.rows[:500]])
            ws.column_dimensions[get_column_letter(c)].width = min(45, max(6, longest))
        ws.freeze_panes = ws.cell(head + 1, 1)
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.orientation = "landscape" if t.wide else "portrait"
        ws.page_setup.fitToWidth = 1
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_setup.fitToHeight = 0
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
