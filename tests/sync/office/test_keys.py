"""Ed25519 enrolment through the running receiver: the office ends up holding public keys
only, its files are its own, a revoked key is refused, re-keying works."""

import json
import os
import stat
import urllib.error
import urllib.request
from datetime import UTC, date, datetime

import pytest

from filterd.sync import schema
from filterd.sync.office.enrol import enrol_school, rekey_school, revoke_school
from filterd.sync.report import build_report
from filterd.sync.signing import Credential, b64e, sign
from filterd.sync.uploader import Uploader, UploadRejected, enrol

from ..conftest import TZ, generate_days, make_event_db, post_report

DAY = date(2026, 11, 24)


@pytest.fixture
def body(tmp_path):
    conn = make_event_db(tmp_path / "f.db")
    generate_days(conn, [DAY])
    return schema.encode(build_report(conn, school_id="thcs-01", day=DAY, tz=TZ,
                                      secret=b"x" * 32))


def _post_json(url, data):
    req = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _everything_stored(storage) -> str:
    """Every value of every office table, as text (what a database dump would show)."""
    tables = [r[0] for r in storage.query(
        "SELECT name FROM sqlite_master WHERE type = 'table'" if storage.backend == "sqlite"
        else "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema()")]
    out = []
    for t in tables:
        out += [repr(row) for row in storage.query(f"SELECT * FROM {t}")]
    return "\n".join(out)


from filterd.sync.office.feeds import KEY_FILE as FEED_KEY_FILE  # noqa: E402


def test_enrol_sign_revoke_rekey_and_no_secret_at_the_office(office, body, tmp_path):
    st = office.storage
    code = enrol_school(st, "thcs-01", "THCS Một", "Ba Đình", "Hà Nội")
    cred = Credential.generate("thcs-01")
    # a wrong code, and a right code for another school, change nothing
    with pytest.raises(UploadRejected, match="wrong enrolment code"):
        enrol(office.url, cred, "AAAA-BBBB-CCCC-DDDD-EEEE")
    enrol_school(st, "thcs-02", "THCS Hai", "Ba Đình", "Hà Nội")
    with pytest.raises(UploadRejected, match="wrong enrolment code"):
        enrol(office.url, Credential.generate("thcs-02"), code.code)
    assert st.keys("thcs-01") == [] and st.keys("thcs-02") == []
    answer = enrol(office.url, cred, code.code)
    assert answer["key_id"] == cred.key_id
    with pytest.raises(UploadRejected, match="already used"):
        enrol(office.url, Credential.generate("thcs-01"), code.code)

    up = Uploader(office.url, cred, timeout=10)
    assert up.send(body).status == "stored"

    # the office holds the public key, and nothing that could sign for the school
    dump = _everything_stored(st)
    assert b64e(cred.public) in dump
    for secret in (b64e(cred.key), cred.key.hex(), cred.line(), code.code,
                   code.code.replace("-", "")):
        assert secret not in dump and secret.lower() not in dump.lower()
    if st.backend == "sqlite":
        files = [p for p in st.path.parent.iterdir() if p.is_file()]
        assert st.path in files
        for p in files:
            raw = p.read_bytes()
            assert cred.key not in raw and b64e(cred.key).encode() not in raw
            assert code.code.encode() not in raw
            # the one private key there is the office's own, which signs its feeds
            assert b"PRIVATE KEY" not in raw or p.name == FEED_KEY_FILE
            assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, f"{p} readable by others"
        assert stat.S_IMODE(os.stat(st.path.parent).st_mode) & 0o077 == 0

    # revoked: refused at once, nothing stored
    assert revoke_school(st, "thcs-01") == 1
    before = st.query("SELECT COUNT(*) FROM reports")[0][0]
    status, payload = post_report(office.url, body, sign(cred, body,
                                                         datetime.now(UTC).timestamp()))
    assert status == 401 and "was revoked" in payload["error"]
    assert st.query("SELECT COUNT(*) FROM reports")[0][0] == before

    # re-keyed: a new code, a new key; the old one stays refused
    new_code = rekey_school(st, "thcs-01")
    new = Credential.generate("thcs-01")
    enrol(office.url, new, new_code.code)
    assert Uploader(office.url, new, timeout=10).send(body).status == "duplicate"
    status, _ = post_report(office.url, body, sign(cred, body, datetime.now(UTC).timestamp()))
    assert status == 401
    keys = {k.key_id: k.revoked_at for k in st.keys("thcs-01")}
    assert keys[cred.key_id] is not None and keys[new.key_id] is None


def test_enrolment_api_refuses_bad_input_and_throttles_guessing(office):
    url = office.url + "/api/v1/enrol"
    enrol_school(office.storage, "thcs-01", "THCS Một", "Ba Đình", "Hà Nội")
    assert _post_json(url, {"school_id": "thcs-01"})[0] == 400
    assert _post_json(url, {"school_id": "thcs-01", "code": "x", "public_key": "!!"})[0] == 400
    pub = b64e(Credential.generate("thcs-01").public)
    for _ in range(5):
        status, payload = _post_json(url, {"school_id": "thcs-01", "code": "WRONG",
                                           "public_key": pub})
        assert status == 403 and "wrong enrolment code" in payload["error"]
    status, payload = _post_json(url, {"school_id": "thcs-01", "code": "WRONG",
                                       "public_key": pub})
    assert status == 429
    assert office.storage.keys("thcs-01") == []


def test_an_existing_0644_office_database_is_tightened(tmp_path):
    from filterd.sync.office.storage import Storage

    db = tmp_path / "office.db"
    db.write_bytes(b"")
    os.chmod(db, 0o644)
    st = Storage(f"sqlite:///{db}")
    st.migrate()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    st.close()
