"""The periodic report as the office files it: PDF (Decree 30 layout, A4, every column on
the page), XLSX with the CSV's totals, office settings, periods."""

import csv
import io
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from filterd.sync.office import document, words

from .test_pages import loaded as loaded
from .test_pages import login

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None,
                                reason="poppler-utils not installed (scripts/apt-packages.txt)")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture
def storage(tmp_path):
    """SQLite only here: the figures are checked on both backends in test_pages.py (the
    yearly CSV); printing them does not depend on the database."""
    from filterd.sync.office.storage import Storage

    st = Storage(f"sqlite:///{tmp_path / 'office' / 'office.db'}")
    st.migrate()
    yield st
    st.close()


def _csv(c, n, q="kind=year&year=2026"):
    return list(csv.reader(io.StringIO(c.get(f"/report?{q}&format=csv&table={n}")
                                       .get_data(as_text=True).lstrip("\ufeff"))))


def _words_on_pages(pdf: Path):
    """(page width, height, [(xMin, xMax, word)]) per page, from pdftotext -bbox."""
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    pages = []
    for m in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S):
        ws = [(float(a), float(b), w) for a, b, w in re.findall(
            r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
            m.group(3))]
        pages.append((float(m.group(1)), float(m.group(2)), ws))
    return pages


def test_yearly_pdf_in_the_administrative_format(loaded, tmp_path):
    c = loaded.app.test_client()
    login(c, "admin1", "admin-pass")
    page = c.get("/settings").get_data(as_text=True)
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = c.post("/settings", data={
        "csrf_token": tok, "parent_agency": "Ủy ban nhân dân thành phố Hà Nội",
        "agency": "Sở Giáo dục và Đào tạo Hà Nội", "symbol": "BC-SGDĐT", "place": "Hà Nội",
        "signer_title": "Giám đốc", "signer_name": "Nguyễn Thị Minh",
        "recipients": "Bộ Giáo dục và Đào tạo"})
    assert r.status_code == 200
    r = c.get("/report?kind=year&year=2026&number=125&format=pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert "bao-cao-2026.pdf" in r.headers["Content-Disposition"]
    pdf = tmp_path / "bao-cao-2026.pdf"
    pdf.write_bytes(r.data)

    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    for must in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc",
                 "ỦY BAN NHÂN DÂN THÀNH PHỐ HÀ NỘI", "SỞ GIÁO DỤC VÀ ĐÀO TẠO HÀ NỘI",
                 "Số: 125/BC-SGDĐT", "Hà Nội, ngày", "BÁO CÁO",
                 "từ ngày 01/12/2025 đến ngày 30/11/2026", "Kính gửi: Bộ Giáo dục và Đào tạo",
                 "Nơi nhận:", "GIÁM ĐỐC", "(Ký, ghi rõ họ tên và đóng dấu)", "Nguyễn Thị Minh",
                 "PHỤ LỤC 1", "Ba Đình", "Cầu Giấy", "Tổng cộng"):
        assert must in flat, must
    # every category that was blocked, in its Vietnamese words; no internal code anywhere
    cats = {r[0] for r in loaded.storage.query(
        "SELECT DISTINCT category FROM report_counts WHERE action = 'block'"
        " AND category <> 'none'")}
    assert len(cats) >= 4
    for cid in cats:
        assert words.category(cid) in flat, cid
    for code in (*cats, "mam_non", "tieu_hoc", "thpt", "fewer_than_k", "social_networks"):
        assert not re.search(rf"\b{code}\b", flat), code

    # every column on its page: no word past the right margin, and the rendered page has
    # white space to the right of the tables (nothing cut at the edge)
    pages = _words_on_pages(pdf)
    assert len(pages) >= 3
    assert any(w > h for w, h, _ in pages) and any(w < h for w, h, _ in pages)  # landscape too
    for w, _h, ws in pages:
        assert ws and max(x1 for _x0, x1, _ in ws) < w - 30, "a column runs off the page"
    last_headers = ["Lượt", "cố", "vượt", "lọc"]
    for _w, _h, ws in pages:
        if any(word == "PHỤ" for *_, word in ws):
            assert all(any(word == h for *_, word in ws) for h in last_headers)
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf),
                    str(ARTIFACTS / "office-report-page")], check=True)
    from PIL import Image

    pngs = sorted(ARTIFACTS.glob("office-report-page-*.png"))
    assert len(pngs) == len(pages)
    for png in pngs:
        im = Image.open(png).convert("L")
        box = im.point(lambda v: 255 if v < 200 else 0).getbbox()   # the inked area
        assert box is not None
        assert box[2] < im.width - 8 and box[0] > 8, f"{png.name}: ink touches the edge"


def test_xlsx_has_the_csv_totals(loaded):
    from openpyxl import load_workbook

    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    r = c.get("/report?kind=year&year=2026&format=xlsx")
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    wb = load_workbook(io.BytesIO(r.data))
    assert len(wb.sheetnames) == 4
    for n, name in enumerate(wb.sheetnames):
        ws = wb[name]
        values = [[c.value for c in row] for row in ws.iter_rows()]
        assert values[1][3] == document.NATIONAL_TITLE
        head = next(i for i, row in enumerate(values) if row[0] == "STT")
        sheet = [row for row in values[head:] if any(v is not None for v in row)]
        table = _csv(c, n)
        assert [str(v) for v in sheet[0]] == table[0]
        assert len(sheet) == len(table)
        for col in range(len(table[0])):
            if all(re.fullmatch(r"\d+", row[col] or "0") for row in table[1:]):
                xs = sum(int(row[col] or 0) for row in sheet[1:-1])
                cs = sum(int(row[col] or 0) for row in table[1:-1])
                assert xs == cs, (name, table[0][col])
                if table[-1][col]:
                    assert int(sheet[-1][col]) == int(table[-1][col]) == cs


def test_periods():
    assert document.Period("year", 2026).bounds == (date(2025, 12, 1), date(2026, 11, 30))
    assert document.Period("quarter", 2026, 4).bounds == (date(2026, 10, 1), date(2026, 12, 31))
    assert document.Period("month", 2026, 2).bounds == (date(2026, 2, 1), date(2026, 2, 28))
    assert document.Period("month", 2026, 1).previous() == document.Period("month", 2025, 12)
    assert "quý IV năm 2026" in document.Period("quarter", 2026, 4).words
    for bad in (("week", 2026, 0), ("month", 2026, 13), ("quarter", 2026, 0)):
        with pytest.raises(ValueError):
            document.Period(*bad)


def test_monthly_and_quarterly_and_bad_periods(loaded):
    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    month = _csv(c, 2, "kind=month&year=2026&n=11")
    assert int(month[-1][6]) == int(_csv(c, 2)[-1][6]) > 0
    assert int(_csv(c, 2, "kind=month&year=2026&n=10")[-1][6]) == 0
    assert int(_csv(c, 2, "kind=quarter&year=2026&n=4")[-1][6]) == int(month[-1][6])
    assert c.get("/report?kind=week").status_code == 400
    assert c.get("/report?kind=month&n=13").status_code == 400
    assert c.get("/report?number=%3Cscript%3E").status_code == 400
    assert c.get("/report?format=doc").status_code == 400
    only = _csv(c, 3, "kind=year&year=2026&district=C%E1%BA%A7u+Gi%E1%BA%A5y")
    assert [r[2] for r in only[1:-1]] == ["Cầu Giấy"]


def test_weasyprint_prints_the_same_document():
    """The fallback engine (no browser on the server): same header, landscape appendix."""
    from filterd.sync.office import render

    data = document.ReportData(document.Period("month", 2026, 11), 1, 1, 30, 100, 10, 0, 8, [
        document.Table("Bảng", ["STT", "Nhóm nội dung", "Lượt bị chặn"],
                       [[1, words.category("adult"), 10]], ["", "Tổng cộng", 10]),
        document.Table("Rộng", ["STT", "Tên trường", "Lượt bị chặn"],
                       [[1, "Trường A", 10]], ["", "Tổng cộng", 10], wide=True)])
    html = document.render_html_standalone(data, document.OfficeSettings(),
                                           issued=date(2026, 12, 1))
    out = render.pdf(html, engine="weasyprint")
    text = subprocess.run(["pdftotext", "-", "-"], input=out, capture_output=True,
                          check=True).stdout.decode()
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text and "Nội dung người lớn" in text
    assert "tháng 11 năm 2026" in text and "PHỤ LỤC 1" in text
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "9", "-"], input=out,
                          capture_output=True, check=True).stdout.decode()
    sizes = re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", info)
    assert any(float(w) > float(h) for w, h in sizes)   # the appendix is landscape
