"""The review queue: teachers see their groups' requests; admins approve or decline."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.admin_ui.conftest import post


@pytest.fixture
def reviews(shared_db):
    shared_db["reviews"].insert_all([
        {"id": 1, "created_at": time.time(), "name": "bad.example", "url": "http://bad.example/a",
         "group_id": "thcs", "category": "adult", "reason": "category",
         "message": "<script>alert('x')</script> needed for biology", "client_ip": "127.0.0.2",
         "status": "open"},
        {"id": 2, "created_at": time.time(), "name": "bet.example", "url": None,
         "group_id": "staff", "category": "gambling", "reason": "category", "message": "",
         "client_ip": "127.0.1.5", "status": "open"},
    ])
    return shared_db


def test_teacher_sees_only_their_groups_without_client_addresses(as_role, reviews):
    page = as_role("teacher").get("/reviews").get_data(as_text=True)
    assert "bad.example" in page and "bet.example" not in page
    assert "127.0.0.2" not in page
    assert "/reviews/1/approve" not in page  # deciding is for admins


def test_message_is_escaped(as_role, reviews):
    page = as_role("admin").get("/reviews").get_data(as_text=True)
    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;" in page


def test_approve_adds_an_allow_entry_validated_and_reloads(as_role, reviews, policy_file,
                                                           backend, fake_daemon):
    c = as_role("admin")
    assert backend.decide("bad.example", "thcs").blocked
    resp = post(c, "/reviews/1/approve", days="0", reason="biology")
    assert resp.status_code == 302
    doc = yaml.safe_load(policy_file.read_text())
    assert "bad.example" in doc["groups"]["thcs"]["allow"]
    assert not backend.decide("bad.example", "thcs").blocked
    row = reviews.execute("SELECT status, decided_by, note FROM reviews WHERE id=1").fetchone()
    assert row == ("approved", "admin1", "biology")
    assert fake_daemon.hups() == 1


def test_approve_with_expiry_writes_an_override(as_role, reviews, backend, policy_file):
    before = policy_file.read_text()
    c = as_role("admin")
    post(c, "/reviews/2/approve", days="7", reason="a week")
    items = json.loads((backend.data_dir / "overrides.json").read_text())["overrides"]
    assert [(o["group"], o["domain"]) for o in items] == [("staff", "bet.example")]
    assert policy_file.read_text() == before


def test_decline_needs_a_note(as_role, reviews):
    c = as_role("admin")
    post(c, "/reviews/1/decline", reason="")
    assert reviews.execute("SELECT status FROM reviews WHERE id=1").fetchone()[0] == "open"
    post(c, "/reviews/1/decline", reason="not suitable")
    assert reviews.execute("SELECT status, note FROM reviews WHERE id=1").fetchone() == \
        ("declined", "not suitable")
    assert "not suitable" in c.get("/reviews?status=declined").get_data(as_text=True)


def test_decided_request_cannot_be_decided_again(as_role, reviews, policy_file):
    c = as_role("admin")
    post(c, "/reviews/1/decline", reason="no")
    before = policy_file.read_text()
    post(c, "/reviews/1/approve", days="0", reason="changed my mind")
    assert reviews.execute("SELECT status FROM reviews WHERE id=1").fetchone()[0] == "declined"
    assert policy_file.read_text() == before


def test_missing_review_is_404(as_role, reviews):
    assert post(as_role("admin"), "/reviews/99/approve", reason="x").status_code == 404


def test_no_reviews_table_yet(as_role):
    assert as_role("admin").get("/reviews").status_code == 200


def _status(db, rid: int) -> tuple:
    return tuple(db.execute("SELECT status, decided_by, note FROM reviews WHERE id = ?",
                            [rid]).fetchone())


def test_teacher_declines_a_request_of_their_group_with_a_note(as_role, reviews, policy_file):
    before = policy_file.read_text()
    c = as_role("teacher")
    page = c.get("/reviews").get_data(as_text=True)
    assert "/reviews/1/decline" in page and "/reviews/1/approve" not in page
    assert post(c, "/reviews/1/decline", reason="").status_code == 302
    assert _status(reviews, 1)[0] == "open"   # a note is needed
    assert post(c, "/reviews/1/decline", reason="dùng trang khác").status_code == 302
    assert _status(reviews, 1) == ("declined", "teacher1", "dùng trang khác")
    assert policy_file.read_text() == before
    row = reviews.execute("SELECT actor, role, reason FROM audit WHERE action = 'review.decline'"
                          ).fetchone()
    assert tuple(row) == ("teacher1", "teacher", "dùng trang khác")


def test_teacher_cannot_decide_another_groups_request(as_role, reviews):
    c = as_role("teacher")
    assert post(c, "/reviews/2/decline", reason="no").status_code == 403   # staff, not thcs
    assert post(c, "/reviews/1/approve", reason="yes").status_code == 403  # policy edit
    assert _status(reviews, 2)[0] == "open"


def test_override_made_from_a_request_approves_it(as_role, reviews, backend):
    c = as_role("teacher")
    form = c.get("/overrides?site=bad.example&group=thcs&review=1").get_data(as_text=True)
    assert 'name="review" value="1"' in form
    resp = post(c, "/overrides", site="bad.example", group="thcs", minutes="30",
                reason="bài sinh học", review="1")
    assert resp.status_code == 302
    status, by, note = _status(reviews, 1)
    assert (status, by) == ("approved", "teacher1") and "bài sinh học" in note
    assert [o["domain"] for o in backend.read_overrides()] == ["bad.example"]
    # a request of another group is not touched by an override for this one
    post(c, "/overrides", site="bad.example", group="thcs", minutes="5", reason="x", review="2")
    assert _status(reviews, 2)[0] == "open"
