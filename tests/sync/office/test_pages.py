"""Dashboard pages: sign-in, CSRF, roles, languages, the tables and their CSV, yearly report."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from filterd.sync import schema
from filterd.sync.office.ingest import receive
from filterd.sync.report import build_report
from filterd.sync.signing import sign
from filterd.webauth import hash_password

from ..conftest import TZ, generate_days, make_event_db

DAYS = [date(2026, 11, 20), date(2026, 11, 21)]


@pytest.fixture
def loaded(office, tmp_path):
    """Two districts, three schools; s3 never reported, s2 only on the first day."""
    conn = make_event_db(tmp_path / "f.db")
    generate_days(conn, DAYS)
    creds = {sid: office.enrol(sid, district=dist) for sid, dist in
             (("s1", "Ba Đình"), ("s2", "Ba Đình"), ("s3", "Cầu Giấy"))}
    for sid, days in (("s1", DAYS), ("s2", DAYS[:1])):
        for d in days:
            body = schema.encode(build_report(conn, school_id=sid, day=d, tz=TZ,
                                              secret=b"x" * 32, k=5))
            receive(office.storage, sign(creds[sid], body, datetime.now(UTC).timestamp()), body)
    with office.storage.transaction() as tx:
        tx.execute("UPDATE schools SET enrolled_at = '2026-11-01T00:00:00Z'")
    office.enrol("s4-new", district="Tây Hồ")  # enrolled today: not expected in Nov
    office.storage.set_user("viewer1", hash_password("viewer-pass"), "viewer")
    office.storage.set_user("admin1", hash_password("admin-pass"), "admin")
    return office


def login(client, user, password):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"username": user, "password": password,
                                       "csrf_token": token})


def token(client, path="/schools"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_pages_require_sign_in(loaded):
    c = loaded.app.test_client()
    for path in ("/", "/blocks", "/top", "/bypass", "/lists", "/yearly", "/schools"):
        r = c.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_wrong_password_and_missing_csrf_refused(loaded):
    c = loaded.app.test_client()
    assert login(c, "viewer1", "nope-nope").status_code == 401
    assert c.post("/login", data={"username": "viewer1", "password": "viewer-pass"}
                  ).status_code == 400
    assert c.get("/").status_code == 302


def test_today_shows_reported_and_missing_since(loaded):
    c = loaded.app.test_client()
    assert login(c, "viewer1", "viewer-pass").status_code == 302
    html = c.get("/?day=2026-11-21").get_data(as_text=True)
    assert "Chưa gửi báo cáo" in html  # Vietnamese by default
    rows = list(csv.reader(io.StringIO(
        c.get("/?day=2026-11-21&format=csv&table=0").get_data(as_text=True).lstrip("\ufeff"))))
    missing = {r[0]: r[4] for r in rows[1:]}
    assert missing["s2"] == "2026-11-21"
    assert missing["s3"] == "2026-11-01"  # never reported: missing since its enrolment
    assert "s1" not in missing and "s4-new" not in missing
    reported = c.get("/?day=2026-11-21&format=csv&table=1").get_data(as_text=True)
    assert "s1" in reported and "s2" not in reported


def test_blocks_by_district_match_the_stored_counts(loaded):
    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    text = c.get("/blocks?from=2026-11-01&to=2026-11-30&format=csv&table=0").get_data(
        as_text=True)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:2] == ["Tỉnh/thành phố", "Quận/huyện"]
    total = sum(int(r[4]) for r in rows[1:])
    expected = loaded.storage.query("SELECT SUM(n) FROM report_counts WHERE action = 'block'")
    assert total == int(expected[0][0]) > 0
    assert {r[1] for r in rows[1:]} == {"Ba Đình"}
    per_day = c.get("/blocks?from=2026-11-01&to=2026-11-30&format=csv&table=1").get_data(
        as_text=True)
    assert "20/11/2026" in per_day and "21/11/2026" in per_day   # in words and local dates
    assert "Nội dung người lớn" in per_day and ",adult," not in per_day


def test_top_bypass_lists_and_english(loaded):
    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    c.get("/lang/en")
    html = c.get("/top?from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert "Top categories" in html and "Adult content" in html
    names = c.get("/top?from=2026-11-01&to=2026-11-30&format=csv&table=1").get_data(as_text=True)
    assert ".adult.example" in names
    bypass = c.get("/bypass?from=2026-11-01&to=2026-11-30&format=csv").get_data(as_text=True)
    assert "20/11/2026" in bypass
    lists = c.get("/lists?format=csv").get_data(as_text=True)
    assert "never" in lists and "2026-11-21" in lists


def test_yearly_report_html_and_csv_totals(loaded):
    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    html = c.get("/yearly?year=2026").get_data(as_text=True)
    assert "01/12/2025" in html and "30/11/2026" in html
    assert c.get("/report?kind=year&year=2026").get_data(as_text=True) == html

    def table(n):
        return list(csv.reader(io.StringIO(c.get(f"/report?kind=year&year=2026&format=csv"
                                                 f"&table={n}").get_data(as_text=True)
                                           .lstrip("\ufeff"))))
    # tables: 0 tiers, 1 categories, 2 districts, 3 schools; each ends with its total row
    rows = table(2)
    by_district = {r[2]: r for r in rows[1:-1]}
    assert by_district["Ba Đình"][3] == "2" and by_district["Cầu Giấy"][3] == "1"
    queries = int(by_district["Ba Đình"][6])
    stored = loaded.storage.query("SELECT SUM(n) FROM report_counts")[0][0]
    assert queries == int(stored) == int(rows[-1][6])
    schools = table(3)
    per_school = {r[1]: r for r in schools[1:-1]}
    assert per_school["THCS s1"][4] == "2" and per_school["THCS s2"][4] == "1"
    assert per_school["THCS s3"][4] == "0"
    assert sum(int(r[5]) for r in schools[1:-1]) == queries == int(schools[-1][5])
    assert int(table(0)[-1][2]) == queries

def test_viewer_cannot_enrol_admin_can_and_sees_the_credential_once(loaded):
    v = loaded.app.test_client()
    login(v, "viewer1", "viewer-pass")
    form = {"id": "s9", "name": "THCS 9", "district": "Đống Đa", "province": "Hà Nội"}
    assert v.post("/schools", data={**form, "csrf_token": token(v)}).status_code == 403
    a = loaded.app.test_client()
    login(a, "admin1", "admin-pass")
    assert a.post("/schools", data=form).status_code == 400  # no CSRF token
    r = a.post("/schools", data={**form, "csrf_token": token(a)})
    assert r.status_code == 200
    code = re.search(r'id="credential">(([A-Z2-9]{4}-){4}[A-Z2-9]{4})<',
                     r.get_data(as_text=True)).group(1)
    assert code not in a.get("/schools").get_data(as_text=True)   # shown once
    assert loaded.storage.school("s9").district == "Đống Đa"
    dup = a.post("/schools", data={**form, "csrf_token": token(a)})
    assert dup.status_code == 400 and "already enrolled" in dup.get_data(as_text=True)


def test_logout_needs_csrf_and_ends_the_session(loaded):
    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    assert c.post("/logout").status_code == 400
    c.post("/logout", data={"csrf_token": token(c, "/")})
    assert c.get("/").status_code == 302


def test_bad_dates_are_400(loaded):
    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    assert c.get("/blocks?from=yesterday").status_code == 400
    assert c.get("/blocks?from=2026-12-01&to=2026-11-01").status_code == 400
    assert c.get("/blocks?format=csv&table=9").status_code == 400
    assert c.get("/?day=" + (date.today() + timedelta(days=1)).isoformat()).status_code == 200
    assert c.get("/yearly?year=0").status_code == 400
    assert c.get("/yearly?year=99999").status_code == 400


def test_csv_cells_never_run_as_spreadsheet_formulas(loaded):
    with loaded.storage.transaction() as tx:
        tx.execute("UPDATE schools SET name = '=HYPERLINK(\"http://x\")' WHERE id = 's3'")
    c = loaded.app.test_client()
    login(c, "viewer1", "viewer-pass")
    rows = list(csv.reader(io.StringIO(
        c.get("/?day=2026-11-21&format=csv&table=0").get_data(as_text=True).lstrip("\ufeff"))))
    names = {r[0]: r[1] for r in rows[1:]}
    assert names["s3"] == "'=HYPERLINK(\"http://x\")"
    assert names["s2"] == "THCS s2"


def test_repeated_wrong_passwords_are_throttled(loaded):
    c = loaded.app.test_client()
    for _ in range(5):
        assert login(c, "admin1", "wrong-password").status_code == 401
    r = login(c, "admin1", "admin-pass")  # even the right password waits now
    assert r.status_code == 429 and "15 phút" in r.get_data(as_text=True)
    assert c.get("/").status_code == 302
