"""The periodic report as an administrative document (Decree 30/2020/NĐ-CP, appendix I).

What a Phòng/Sở GD&ĐT files: the national title and motto, the issuing agency (and the
body it belongs to), number and symbol, place and date, the title, the body with its
tables, and the signature block with "Nơi nhận". One set of figures (`ReportData`, all of
it from the k-anonymous reports the schools sent) becomes the HTML that prints to PDF, the
XLSX workbook and the CSV tables, so the three always agree.

Every label is in words (filterd/sync/office/words.py), never a category or tier id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from filterd.sync.office import words
from filterd.sync.office.storage import Storage

NATIONAL_TITLE = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
KINDS = ("year", "quarter", "month")
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


@dataclass(frozen=True, slots=True)
class OfficeSettings:
    """What the document says about its issuer (office settings, `filterd office settings`)."""

    parent_agency: str = "ỦY BAN NHÂN DÂN TỈNH/THÀNH PHỐ"
    agency: str = "SỞ GIÁO DỤC VÀ ĐÀO TẠO"
    symbol: str = "BC-SGDĐT"
    place: str = "Hà Nội"
    signer_title: str = "GIÁM ĐỐC"
    signer_name: str = ""
    recipients: str = "Bộ Giáo dục và Đào tạo; Sở Khoa học và Công nghệ"

    FIELDS = ("parent_agency", "agency", "symbol", "place", "signer_title", "signer_name",
              "recipients")

    @classmethod
    def load(cls, storage: Storage) -> OfficeSettings:
        stored = dict(storage.settings())
        return cls(**{k: stored[k] for k in cls.FIELDS if stored.get(k)})


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    year: int
    n: int = 0          # quarter 1-4 or month 1-12

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"period kind must be one of {', '.join(KINDS)}")
        if not 2000 <= self.year <= 9999:
            raise ValueError(f"year out of range: {self.year}")
        if self.kind == "quarter" and not 1 <= self.n <= 4:
            raise ValueError("quarter must be 1-4")
        if self.kind == "month" and not 1 <= self.n <= 12:
            raise ValueError("month must be 1-12")

    @property
    def bounds(self) -> tuple[date, date]:
        if self.kind == "year":   # ends 30 November: complete before the 15 December deadline
            return date(self.year - 1, 12, 1), date(self.year, 11, 30)
        if self.kind == "quarter":
            start = date(self.year, 3 * self.n - 2, 1)
            months = 3
        else:
            start = date(self.year, self.n, 1)
            months = 1
        m = start.month - 1 + months
        end = date(start.year + m // 12, m % 12 + 1, 1) - timedelta(days=1)
        return start, end

    def previous(self) -> Period:
        if self.kind == "year":
            return Period("year", self.year - 1)
        last = 4 if self.kind == "quarter" else 12
        return Period(self.kind, self.year - 1, last) if self.n == 1 else \
            Period(self.kind, self.year, self.n - 1)

    @property
    def words(self) -> str:
        start, end = self.bounds
        span = f"từ ngày {start:%d/%m/%Y} đến ngày {end:%d/%m/%Y}"
        if self.kind == "year":
            return f"năm {self.year} ({span})"
        if self.kind == "quarter":
            return f"quý {ROMAN[self.n]} năm {self.year} ({span})"
        return f"tháng {self.n} năm {self.year} ({span})"

    @property
    def stamp(self) -> str:
        return {"year": f"{self.year}", "quarter": f"{self.year}-q{self.n}",
                "month": f"{self.year}-{self.n:02d}"}[self.kind]


@dataclass
class Table:
    """A titled table; `total` is its last row (sums), kept apart so XLSX can mark it."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    total: list[Any] | None = None
    wide: bool = False   # printed on a landscape page


@dataclass
class ReportData:
    period: Period
    schools: int
    schools_reporting: int
    school_days: int
    queries: int
    blocked: int
    bypass: int
    previous_blocked: int
    tables: list[Table]


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}".replace(".", ",") + "%" if whole else "–"


def _num(n: int) -> str:
    """Vietnamese thousands separator (a dot)."""
    return f"{n:,}".replace(",", ".")


def build(storage: Storage, period: Period, district: str | None = None) -> ReportData:
    start, end = period.bounds
    p = [start.isoformat(), end.isoformat()]
    schools = [s for s in storage.schools() if district in (None, s.district)]
    ids = {s.id for s in schools}
    per_school: dict[str, dict[str, int]] = {s.id: {"days": 0, "queries": 0, "blocked": 0,
                                                    "bypass": 0} for s in schools}
    for sid, n in storage.query("SELECT school_id, COUNT(*) FROM reports WHERE day >= ?"
                                " AND day <= ? GROUP BY school_id", p):
        if sid in ids:
            per_school[sid]["days"] = int(n)
    for sid, action, n in storage.query(
            "SELECT school_id, action, SUM(n) FROM report_counts WHERE day >= ? AND day <= ?"
            " GROUP BY school_id, action", p):
        if sid in ids:
            per_school[sid]["queries"] += int(n)
            if action == "block":
                per_school[sid]["blocked"] += int(n)
    for sid, n in storage.query("SELECT school_id, SUM(attempts) FROM report_bypass"
                                " WHERE day >= ? AND day <= ? GROUP BY school_id", p):
        if sid in ids:
            per_school[sid]["bypass"] = int(n)
    cats: dict[str, int] = {}
    tiers: dict[str, list[int]] = {}
    for sid, grp, cat, action, n in storage.query(
            "SELECT school_id, grp, category, action, SUM(n) FROM report_counts"
            " WHERE day >= ? AND day <= ? GROUP BY school_id, grp, category, action", p):
        if sid not in ids:
            continue
        t = tiers.setdefault(words.tier(grp), [0, 0, words.tier_order(grp)[0]])
        t[0] += int(n)
        if action == "block":
            t[1] += int(n)
            if cat != "none":
                label = words.category(cat)
                cats[label] = cats.get(label, 0) + int(n)
    order = {words.category(c): words.category_order(c) for c in words._categories()}

    totals = {k: sum(v[k] for v in per_school.values()) for k in ("days", "queries",
                                                                    "blocked", "bypass")}
    by_district: dict[tuple[str, str], list[int]] = {}
    for s in schools:
        v = per_school[s.id]
        acc = by_district.setdefault((s.province, s.district), [0, 0, 0, 0, 0, 0])
        acc[0] += 1
        acc[1] += int(v["days"] > 0)
        acc[2] += v["days"]
        acc[3] += v["queries"]
        acc[4] += v["blocked"]
        acc[5] += v["bypass"]
    t_district = Table("Tổng hợp theo quận/huyện",
                       ["STT", "Tỉnh/thành phố", "Quận/huyện", "Số trường",
                        "Số trường có báo cáo", "Số ngày báo cáo", "Lượt truy cập",
                        "Lượt bị chặn", "Tỷ lệ chặn", "Lượt cố vượt lọc"], wide=True)
    for i, ((prov, dist), a) in enumerate(sorted(by_district.items()), start=1):
        t_district.rows.append([i, prov, dist, a[0], a[1], a[2], a[3], a[4], _pct(a[4], a[3]),
                                a[5]])
    reporting = sum(1 for v in per_school.values() if v["days"])
    t_district.total = ["", "Tổng cộng", "", len(schools), reporting, totals["days"],
                        totals["queries"], totals["blocked"],
                        _pct(totals["blocked"], totals["queries"]), totals["bypass"]]

    t_tier = Table("Tổng hợp theo cấp học, nhóm tuổi",
                   ["STT", "Cấp học / nhóm tuổi", "Lượt truy cập", "Lượt bị chặn", "Tỷ lệ chặn"])
    for i, (label, (q, b, _o)) in enumerate(sorted(tiers.items(), key=lambda kv: kv[1][2]),
                                            start=1):
        t_tier.rows.append([i, label, q, b, _pct(b, q)])
    t_tier.total = ["", "Tổng cộng", sum(v[0] for v in tiers.values()),
                    sum(v[1] for v in tiers.values()),
                    _pct(sum(v[1] for v in tiers.values()), sum(v[0] for v in tiers.values()))]

    t_cat = Table("Tổng hợp lượt chặn theo nhóm nội dung",
                  ["STT", "Nhóm nội dung", "Lượt bị chặn", "Tỷ lệ trên tổng lượt chặn"])
    cat_total = sum(cats.values())
    for i, (label, n) in enumerate(sorted(cats.items(), key=lambda kv: order.get(kv[0], (999,))),
                                   start=1):
        t_cat.rows.append([i, label, n, _pct(n, cat_total)])
    t_cat.total = ["", "Tổng cộng", cat_total, _pct(cat_total, cat_total) if cat_total else "–"]

    t_school = Table("Chi tiết theo trường",
                     ["STT", "Tên trường", "Quận/huyện", "Tỉnh/thành phố", "Số ngày báo cáo",
                      "Lượt truy cập", "Lượt bị chặn", "Tỷ lệ chặn", "Lượt cố vượt lọc"],
                     wide=True)
    for i, s in enumerate(sorted(schools, key=lambda s: (s.province, s.district, s.name)),
                          start=1):
        v = per_school[s.id]
        t_school.rows.append([i, s.name, s.district, s.province, v["days"], v["queries"],
                              v["blocked"], _pct(v["blocked"], v["queries"]), v["bypass"]])
    t_school.total = ["", "Tổng cộng", "", "", totals["days"], totals["queries"],
                      totals["blocked"], _pct(totals["blocked"], totals["queries"]),
                      totals["bypass"]]

    ps, pe = period.previous().bounds
    prev = storage.query("SELECT COALESCE(SUM(c.n), 0) FROM report_counts c WHERE"
                         " c.action = 'block' AND c.day >= ? AND c.day <= ?"
                         + (" AND c.school_id IN (SELECT id FROM schools WHERE district = ?)"
                            if district else ""),
                         [ps.isoformat(), pe.isoformat(), *([district] if district else [])])
    return ReportData(period, len(schools), reporting, totals["days"], totals["queries"],
                      totals["blocked"], totals["bypass"], int(prev[0][0] or 0),
                      [t_tier, t_cat, t_district, t_school])


def render_html(data: ReportData, settings: OfficeSettings, *, issued: date,
                number: str = "") -> str:
    from flask import render_template

    return render_template("office/document.html", d=data, s=settings, issued=issued,
                           number=number, national=NATIONAL_TITLE, motto=MOTTO, num=_num,
                           pct=_pct)


def render_html_standalone(data: ReportData, settings: OfficeSettings, *, issued: date,
                           number: str = "") -> str:
    """The same HTML outside a request (benchmarks, the CLI)."""
    from pathlib import Path

    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(
        Path(__file__).with_name("templates")), autoescape=True)
    return env.get_template("office/document.html").render(
        d=data, s=settings, issued=issued, number=number, national=NATIONAL_TITLE,
        motto=MOTTO, num=_num, pct=_pct)
