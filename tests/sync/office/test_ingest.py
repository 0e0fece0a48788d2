"""Upload verification, against SQLite and PostgreSQL, through a running receiver."""

import gzip
import json
import urllib.error
import urllib.request
from datetime import UTC, date, datetime

import pytest

from filterd.sync import schema
from filterd.sync.report import build_report
from filterd.sync.signing import H_SIGNATURE, H_TIMESTAMP, Credential, sign

from ..conftest import TZ, generate_days, make_event_db, post_report

DAY = date(2026, 11, 24)
DETAIL_TABLES = ("reports", "report_counts", "report_top", "report_devices", "report_bypass")


@pytest.fixture
def body(tmp_path):
    conn = make_event_db(tmp_path / "f.db")
    generate_days(conn, [DAY])
    r = build_report(conn, school_id="thcs-ba-dinh-01", day=DAY, tz=TZ, secret=b"x" * 32, k=5)
    assert r["top_blocked"] and r["bypass"]
    return schema.encode(r)


def post(office, body: bytes, headers: dict[str, str]):
    return post_report(office.url, body, headers)


def nothing_stored(office):
    return all(office.count(t) == 0 for t in DETAIL_TABLES)


def test_signed_upload_is_stored_once(office, body):
    cred = office.enrol()
    now = datetime.now(UTC).timestamp()
    assert post(office, body, sign(cred, body, now)) == (
        200, {"status": "stored", "school_id": "thcs-ba-dinh-01", "day": "2026-11-24"})
    total = office.total("thcs-ba-dinh-01", DAY)
    assert total > 0
    # the hourly detail is kept: each stored row's 24 hours add up to its total, and match
    report = json.loads(gzip.decompress(body))
    c = report["counts"][0]
    ((n, hours),) = office.storage.query(
        "SELECT n, hours FROM report_counts WHERE grp = ? AND category = ? AND action = ?",
        [c["group"], c["category"], c["action"]])
    hours = [int(h) for h in hours.split(",")]
    # 24 hours, then the rest of the day (rows rolled up from hours to reach k devices)
    assert len(hours) == 25 and sum(hours) == n
    assert hours[24 if c["hour"] is None else c["hour"]] == c["n"]
    # the same day again (new nonce, e.g. the acknowledgement was lost): not counted twice
    status, ack = post(office, body, sign(cred, body, now))
    assert (status, ack["status"]) == (200, "duplicate")
    assert office.total("thcs-ba-dinh-01", DAY) == total
    assert office.count("reports") == 1


def test_replayed_request_refused(office, body):
    cred = office.enrol()
    headers = sign(cred, body, datetime.now(UTC).timestamp())
    assert post(office, body, headers)[0] == 200
    rows = [office.count(t) for t in DETAIL_TABLES]
    status, payload = post(office, body, headers)
    assert status == 409 and "replayed" in payload["error"]
    assert [office.count(t) for t in DETAIL_TABLES] == rows


def test_tampered_body_refused_and_nothing_stored(office, body):
    cred = office.enrol()
    report = json.loads(gzip.decompress(body))
    report["counts"][0]["n"] += 1000
    tampered = schema.encode(report)
    headers = sign(cred, body, datetime.now(UTC).timestamp())  # signature of the original
    status, payload = post(office, tampered, headers)
    assert status == 401 and "altered" in payload["error"]
    assert nothing_stored(office)


def test_wrong_key_refused(office, body):
    office.enrol()
    other = Credential.generate("thcs-ba-dinh-01")
    status, payload = post(office, body, sign(other, body, datetime.now(UTC).timestamp()))
    assert status == 401 and "is not enrolled for" in payload["error"]
    # a signature by another key under the enrolled key's id
    headers = sign(other, body, datetime.now(UTC).timestamp())
    headers["X-Filterd-Key"] = office.storage.keys("thcs-ba-dinh-01")[0].key_id
    status, payload = post(office, body, headers)
    assert status == 401 and "signed with another key" in payload["error"]
    assert nothing_stored(office)


def test_unknown_school_and_missing_headers_refused(office, body):
    status, payload = post(office, body, sign(Credential.issue("ghost"), body,
                                              datetime.now(UTC).timestamp()))
    assert status == 401 and "unknown school" in payload["error"]
    status, payload = post(office, body, {})
    assert status == 401 and "missing authentication" in payload["error"]
    assert nothing_stored(office)


def test_stale_timestamp_refused(office, body):
    cred = office.enrol()
    status, payload = post(office, body, sign(cred, body, datetime.now(UTC).timestamp() - 3600))
    assert status == 401 and "office clock" in payload["error"]
    assert nothing_stored(office)


def test_report_signed_by_another_school_refused(office, body):
    office.enrol()
    other = office.enrol("thcs-khac-02")
    status, payload = post(office, body, sign(other, body, datetime.now(UTC).timestamp()))
    assert status == 400 and "signed by 'thcs-khac-02'" in payload["error"]
    assert nothing_stored(office)


def test_oversized_and_gzip_bomb_refused(office):
    cred = office.enrol()
    big = b"\x1f\x8b" + b"x" * (600 * 1024)
    status, payload = post(office, big, sign(cred, big, datetime.now(UTC).timestamp()))
    assert status == 413 and "too large" in payload["error"]
    bomb = gzip.compress(b'{"a":"' + b"A" * (20 * 1024 * 1024) + b'"}')
    status, payload = post(office, bomb, sign(cred, bomb, datetime.now(UTC).timestamp()))
    assert status == 413 and "expands beyond" in payload["error"]
    assert nothing_stored(office)


def test_schema_violation_refused(office, body):
    cred = office.enrol()
    report = json.loads(gzip.decompress(body))
    report["devices"]["10.0.0.1"] = 1
    bad = gzip.compress(json.dumps(report).encode())
    status, payload = post(office, bad, sign(cred, bad, datetime.now(UTC).timestamp()))
    assert status == 400 and "schema" in payload["error"]
    assert nothing_stored(office)


@pytest.mark.parametrize("field,value", [(("day",), "2026-13-45"),
                                         (("generated_at",), "2026-11-25T25:61:00Z"),
                                         (("lists", "updated_at"), "2026-02-30T01:00:00Z")])
def test_impossible_dates_refused(office, body, field, value):
    """They match the schema's pattern, but the pages would fail on them."""
    cred = office.enrol()
    report = json.loads(gzip.decompress(body))
    target = report
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    bad = schema.encode(report)
    status, payload = post(office, bad, sign(cred, bad, datetime.now(UTC).timestamp()))
    assert status == 400 and "impossible date" in payload["error"]
    assert nothing_stored(office)


def test_not_gzip_encoded_refused(office, body):
    cred = office.enrol()
    headers = sign(cred, body, datetime.now(UTC).timestamp())
    req = urllib.request.Request(office.url + "/api/v1/reports", data=body, method="POST",
                                 headers=headers)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 415


def test_bad_signature_header_format(office, body):
    cred = office.enrol()
    headers = sign(cred, body, datetime.now(UTC).timestamp())
    headers[H_TIMESTAMP] = "soon"
    assert post(office, body, headers)[0] == 400
    headers = sign(cred, body, datetime.now(UTC).timestamp())
    headers[H_SIGNATURE] = "00" * 32
    assert post(office, body, headers)[0] == 401
    assert nothing_stored(office)


def test_many_schools_uploading_at_once(office, tmp_path):
    """waitress threads, one connection per thread: concurrent uploads all land, once."""
    from concurrent.futures import ThreadPoolExecutor

    conn = make_event_db(tmp_path / "g.db")
    generate_days(conn, [DAY], per_day=50)
    jobs = []
    for i in range(16):
        sid = f"school-{i:02d}"
        cred = office.enrol(sid)
        body = schema.encode(build_report(conn, school_id=sid, day=DAY, tz=TZ,
                                          secret=b"x" * 32, k=5))
        jobs += [(cred, body)] * 2  # every school twice: the second is a duplicate

    def send(job):
        cred, body = job
        return post(office, body, sign(cred, body, datetime.now(UTC).timestamp()))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, jobs))
    assert all(status == 200 for status, _ in results), results
    assert sorted(ack["status"] for _, ack in results) == ["duplicate"] * 16 + ["stored"] * 16
    assert office.count("reports") == 16
    one = office.total("school-00", DAY)
    assert one > 0
    assert office.storage.query("SELECT SUM(n) FROM report_counts")[0][0] == one * 16


@pytest.mark.parametrize("storage", ["postgres"], indirect=True)   # SQLite is a file
def test_postgres_outage_answers_503_then_restart_reconnects(office, body, monkeypatch):
    """The office database is down for a while, then restarts (every connection cut):
    during the outage the office answers 503 with Retry-After and stores nothing; the
    appliance's retry afterwards is stored on a new connection, and once only."""
    from ..conftest import cut_connections, free_port

    st = office.storage
    cred = office.enrol()
    base = st.url.split("?", 1)[0]
    good_url = st.url

    def upload():
        return post(office, body, sign(cred, body, datetime.now(UTC).timestamp()))

    # The outage: connections cut and the server unreachable (its port now a closed one).
    port = base.rsplit(":", 1)[1].split("/")[0]
    cut_connections(st)
    monkeypatch.setattr(st, "url", good_url.replace(":" + port, f":{free_port()}", 1))
    req = urllib.request.Request(office.url + "/api/v1/reports", data=body, method="POST",
                                 headers={"Content-Encoding": "gzip",
                                          **sign(cred, body, datetime.now(UTC).timestamp())})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 503 and err.value.headers["Retry-After"] == "60"
    assert "office database unavailable" in json.loads(err.value.read())["error"]
    # The pages say so too, in the user's language, rather than an error 500.
    client = office.app.test_client()
    with client.session_transaction() as s:
        s["user"], s["role"] = "viewer1", "viewer"
    page = client.get("/schools")
    assert page.status_code == 503 and page.headers["Retry-After"] == "60"
    assert "vui lòng thử lại sau một phút" in page.get_data(as_text=True)

    # The database is back: the appliance's retry is stored.
    monkeypatch.setattr(st, "url", good_url)
    assert nothing_stored(office)
    status, ack = upload()
    assert (status, ack["status"]) == (200, "stored")
    total = office.total("thcs-ba-dinh-01", DAY)
    assert total > 0
    # A restart between two uploads: the next one reconnects; the day is not counted twice.
    cut_connections(st)
    status, ack = upload()
    assert (status, ack["status"]) == (200, "duplicate")
    assert office.total("thcs-ba-dinh-01", DAY) == total
    assert office.count("reports") == 1


def _altered(body: bytes, change) -> bytes:
    # gzip without the appliance's validation: what an old or altered appliance could send
    report = json.loads(gzip.decompress(body))
    change(report)
    return gzip.compress(schema.dumps(report))


@pytest.mark.parametrize("change, words", [
    (lambda r: r["devices"].update(mam_non=1), "devices/mam_non"),
    (lambda r: r["devices"].update(thcs=3), "devices/thcs = 3 is below k=5"),
    (lambda r: r["bypass"].update(thpt={"attempts": 9, "devices": 3}),
     "bypass/thpt has 3 devices, below k=5"),
    (lambda r: r["top_blocked"].setdefault("adult", []).append(
        {"name": "nguyen-van-an-ipad.local", "devices": 9, "hits": 9}), "local or device name"),
    (lambda r: r["top_blocked"].setdefault("adult", []).append(
        {"name": "rare.adult.example", "devices": 4, "hits": 40}), "4 devices, below k=5"),
    (lambda r: r.update(k_anonymity=3), "k_anonymity=3; this office requires at least 5"),
])
def test_validly_signed_report_that_leaks_a_child_is_refused(office, body, change, words):
    """Signed by the school's own key, valid against the schema, and still one child's
    record (an old or altered appliance): 400, nothing stored."""
    cred = office.enrol()
    bad = _altered(body, change)
    status, payload = post(office, bad, sign(cred, bad, datetime.now(UTC).timestamp()))
    assert status == 400 and words in payload["error"], payload
    assert nothing_stored(office) and office.count("nonces") == 0


def test_office_k_higher_than_the_report_refuses(storage, body):
    from filterd.sync.office.ingest import IngestError, Limits, receive

    from ..conftest import enrol_with_key

    storage.migrate()
    cred = enrol_with_key(storage)
    with pytest.raises(IngestError, match="requires at least 10"):
        receive(storage, sign(cred, body, datetime.now(UTC).timestamp()), body,
                limits=Limits(k=10))
    assert storage.query("SELECT COUNT(*) FROM reports")[0][0] == 0
