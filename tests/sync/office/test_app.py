"""The office dashboard in a real browser (Chromium): sign in, read, switch language, enrol."""

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from filterd.sync import schema
from filterd.sync.office.ingest import receive
from filterd.sync.report import build_report
from filterd.sync.signing import sign
from filterd.webauth import hash_password

from ..conftest import TZ, generate_days, make_event_db

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-dev-shm-usage"]
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)
def test_dashboard_in_chromium(office, tmp_path, artifacts_dir):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed")
    day = date(2026, 11, 21)
    conn = make_event_db(tmp_path / "f.db")
    generate_days(conn, [day])
    cred = office.enrol("thcs-ba-dinh-01")
    office.enrol("thcs-cau-giay-02", district="Cầu Giấy")
    body = schema.encode(build_report(conn, school_id="thcs-ba-dinh-01", day=day, tz=TZ,
                                      secret=b"x" * 32, k=5))
    receive(office.storage, sign(cred, body, datetime.now(UTC).timestamp()), body)
    with office.storage.transaction() as tx:
        tx.execute("UPDATE schools SET enrolled_at = '2026-11-01T00:00:00Z'")
    office.storage.set_user("phong-gd", hash_password("mat-khau-dai"), "admin")

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
            page.goto(office.url + "/?day=2026-11-21")
            assert page.get_by_role("heading", level=1).inner_text() == "Đăng nhập"
            page.get_by_label("Tên đăng nhập").fill("phong-gd")
            page.get_by_label("Mật khẩu").fill("mat-khau-dai")
            page.get_by_role("button", name="Đăng nhập").click()
            page.wait_for_load_state()
            assert page.locator("html").get_attribute("lang") == "vi"
            assert "Báo cáo ngày 2026-11-21" in page.get_by_role("heading", level=1).inner_text()
            missing = page.locator("table").first.inner_text()
            assert "thcs-cau-giay-02" in missing and "thcs-ba-dinh-01" not in missing
            page.screenshot(path=str(artifacts_dir / "office-today-vi.png"), full_page=True)

            with page.expect_download() as dl:
                page.get_by_role("link", name="Tải CSV").first.click()
            csv_text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
            assert csv_text.startswith("Mã trường,") and "thcs-cau-giay-02" in csv_text

            page.get_by_role("link", name="EN").click()
            page.wait_for_load_state()
            assert page.locator("html").get_attribute("lang") == "en"
            page.get_by_role("link", name="Blocks").click()
            page.fill("input[name=from]", "2026-11-01")
            page.fill("input[name=to]", "2026-11-30")
            page.get_by_role("button", name="Show").click()
            page.wait_for_load_state()
            assert "Adult content" in page.locator("table").first.inner_text()
            page.screenshot(path=str(artifacts_dir / "office-blocks-en.png"), full_page=True)

            for link, heading in (("Top categories", "Top categories"), ("Bypass", "Bypass"),
                                  ("List freshness", "List freshness")):
                page.get_by_role("link", name=link, exact=True).click()
                page.wait_for_load_state()
                assert page.get_by_role("heading", level=1).inner_text() == heading
                assert "thcs-ba-dinh-01" in page.content() or link != "List freshness"

            page.goto(office.url + "/yearly?year=2026")
            assert "01/12/2025" in page.content()
            tables = page.locator("table")
            assert "Ba Đình" in tables.nth(2).inner_text()   # totals per district
            assert "THCS thcs-cau-giay-02" in tables.nth(3).inner_text()  # every school
            with page.expect_download() as dl:
                page.get_by_role("link", name="Download PDF (to sign)").click()
            assert Path(dl.value.path()).read_bytes()[:5] == b"%PDF-"
            page.screenshot(path=str(artifacts_dir / "office-yearly-en.png"), full_page=True)
            # a wide table scrolls inside its box; the page itself fits a 1280-px screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            with page.expect_download() as dl:
                page.get_by_role("link", name="Download CSV").nth(2).click()
            assert "Ba Đình" in Path(dl.value.path()).read_text(encoding="utf-8-sig")

            page.get_by_role("link", name="Schools").click()
            page.get_by_label("School id").fill("thpt-dong-da-03")
            page.get_by_label("Name").fill("THPT Đống Đa")
            page.get_by_label("District").fill("Đống Đa")
            page.get_by_label("Province").fill("Hà Nội")
            page.get_by_role("button", name="Enrol").click()
            page.wait_for_load_state()
            line = page.locator("#credential").inner_text()
            assert re.fullmatch(r"([A-Z2-9]{4}-){4}[A-Z2-9]{4}", line)
            assert office.storage.school("thpt-dong-da-03").name == "THPT Đống Đa"
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        finally:
            browser.close()


CODES = ("adult", "gambling", "games", "social_networks", "violence", "bypass", "mam_non",
         "tieu_hoc", "thcs", "thpt", "staff", "none", "other", "fewer_than_k", "block",
         "allow")


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)
def test_pages_in_words_at_1280_and_390(office, tmp_path, artifacts_dir):
    """Every page a person reads, in Vietnamese, on a wide screen and a phone: no category,
    tier or action code visible, times in the office's zone, charts drawn in the page."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed")
    days = [date(2026, 11, 20), date(2026, 11, 21)]
    conn = make_event_db(tmp_path / "f.db")
    generate_days(conn, days)
    cred = office.enrol("truong-01")
    office.enrol("truong-02", district="Cầu Giấy")
    for d in days:
        body = schema.encode(build_report(conn, school_id="truong-01", day=d, tz=TZ,
                                          secret=b"x" * 32, k=5))
        receive(office.storage, sign(cred, body, datetime.now(UTC).timestamp()), body)
    with office.storage.transaction() as tx:
        tx.execute("UPDATE schools SET enrolled_at = '2026-11-01T00:00:00Z'")
        tx.execute("UPDATE reports SET received_at = '2026-11-21T19:30:00Z'")
    office.storage.set_user("phong-gd", hash_password("mat-khau-dai"), "admin")
    q = "from=2026-11-20&to=2026-11-21"
    pages = [("/", "today"), (f"/blocks?{q}", "blocks"), (f"/top?{q}", "top"),
             (f"/bypass?{q}", "bypass"), ("/lists", "lists"), ("/report?year=2026", "report"),
             (f"/school/truong-01?{q}", "school"), ("/schools", "schools")]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for width in (1280, 390):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(office.url + "/login")
                page.get_by_label("Tên đăng nhập").fill("phong-gd")
                page.get_by_label("Mật khẩu").fill("mat-khau-dai")
                page.get_by_role("button", name="Đăng nhập").click()
                page.wait_for_load_state()
                for path, name in pages:
                    page.goto(office.url + path)
                    text = page.locator("body").inner_text()
                    words_only = " ".join(w for w in text.split() if "." not in w)  # not names
                    for code in CODES:
                        assert not re.search(rf"(?<![\w-]){code}(?![\w-])", words_only), \
                            f"{path} at {width}px shows the code {code!r}"
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, \
                        f"{path} is wider than {width}px"
                    page.screenshot(path=str(artifacts_dir / f"office-{name}-{width}.png"),
                                    full_page=True)
                    if name == "blocks":
                        assert page.locator("svg.chart").count() == 2
                        assert "kỳ trước" in text and "Nội dung người lớn" in text
                    if name == "school":
                        assert "2/2" in text and "22/11/2026 02:30" in text  # office zone
                        assert "Số thiết bị theo nhóm tuổi" in text
                    if name == "today":
                        assert "Cầu Giấy" in text
                page.close()
        finally:
            browser.close()
