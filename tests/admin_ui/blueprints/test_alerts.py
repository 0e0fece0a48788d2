"""The alerts page: alerts with where they went, mark handled (audit), recipients' form."""

from __future__ import annotations

import html
import time

import pytest

from filterd.state import alerts as store
from tests.admin_ui.conftest import post


@pytest.fixture
def alerts_db(backend):
    db = store.open_alerts_db(backend.data_dir)
    yield db
    db.conn.close()


def _alert(db, *, group="thcs", ip="10.10.32.7", rule="bao_ve", sent=True) -> int:
    now = time.time()
    with db.conn:
        store.record_hits(db.conn, [store.Hit(
            rule=rule, device=ip, client_ip=ip, client_mac=None, group_id=group,
            category="illegal", first_ts=now - 30, last_ts=now - 20, attempts=3,
            names=("protected.test",), threshold=1, distinct_names=False, window=600,
            digest=False)], hold=0)
    aid = db.conn.execute("SELECT MAX(id) FROM alerts").fetchone()[0]
    store.queue_messages(db, [(store.Outgoing(1, "Cô Lan", "email", "lan@truong.vn", now),
                               [aid])], [aid], now=now)
    mid = db.conn.execute("SELECT MAX(id) FROM alert_messages").fetchone()[0]
    if sent:
        store.mark_sent(db, mid, "subject", now)
    else:
        store.mark_failed(db, mid, "cannot reach the mail server smtp.test:587", now + 60, now)
    return aid


def test_admin_sees_alerts_where_they_went_and_marks_one_handled(as_role, alerts_db):
    aid = _alert(alerts_db)
    failed = _alert(alerts_db, ip="10.10.32.8", sent=False)
    c = as_role("admin")
    page = c.get("/alerts").get_data(as_text=True)
    assert "Cảnh báo" in page and "10.10.32.7" not in page.split("<main")[0]
    assert "Nội dung vi phạm pháp luật" in page and "protected.test" in page
    assert "đã gửi đến" in page and "Cô Lan" in page and "lan@truong.vn" in page
    assert "cannot reach the mail server" in page and "đang chờ gửi" in page
    assert f'href="/alerts/{failed}"' in page
    # a note is required
    r = post(c, f"/alerts/{aid}/handle", note="  ")
    assert r.status_code == 302 and store.get_alert(alerts_db, aid)["handled_ts"] is None
    r = post(c, f"/alerts/{aid}/handle", note="Đã gặp em và phụ huynh")
    assert r.status_code == 302
    a = store.get_alert(alerts_db, aid)
    assert a["handled_by"] == "admin1" and a["handled_note"] == "Đã gặp em và phụ huynh"
    audit = alerts_db.conn.execute("SELECT action, target, reason FROM audit"
                                   " WHERE action = 'alert.handle'").fetchall()
    assert audit == [("alert.handle", f"alert {aid} (bao_ve)", "Đã gặp em và phụ huynh")]
    assert f'id="a{aid}"' not in c.get("/alerts").get_data(as_text=True)
    assert f'id="a{aid}"' in c.get("/alerts?view=handled").get_data(as_text=True)


def test_teacher_sees_only_their_groups_and_no_addresses(as_role, alerts_db):
    mine = _alert(alerts_db, group="thcs", ip="10.10.32.9")
    other = _alert(alerts_db, group="thpt", ip="10.10.40.9")
    c = as_role("teacher")
    page = c.get("/alerts").get_data(as_text=True)
    assert f'id="a{mine}"' in page and f'id="a{other}"' not in page
    assert "10.10.32.9" not in page and "một thiết bị chưa đặt tên" in page
    assert c.get(f"/alerts/{other}").status_code == 404
    assert post(c, f"/alerts/{other}/handle", note="x").status_code == 404


@pytest.mark.parametrize(("field", "value"), [
    ("email", "not-an-address"), ("email", "lan@truong"), ("email", "Lan <lan@truong.vn>"),
    ("email", "lan@truong.vn\r\nBcc: x@evil.test"), ("webhook", "javascript:alert(1)"),
    ("quiet", "late"),
])
def test_recipient_form_refuses_what_is_not_an_address(as_role, alerts_db, field, value):
    c = as_role("admin")
    data = {"name": "Cô Lan", "role": "principal", "email": "lan@truong.vn", "enabled": "1",
            field: value}
    r = post(c, "/alerts/recipients", **data)
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    assert html.escape(value.split("\r")[0]) in page   # what was typed stays
    assert store.recipients(alerts_db) == []


def test_recipient_saved_edited_removed_with_audit(as_role, alerts_db):
    c = as_role("admin")
    r = post(c, "/alerts/recipients", name="Thầy Nam", role="class_teacher",
             email="nam@truong.vn", groups="thcs", quiet="21:00-06:30", enabled="1")
    assert r.status_code == 302
    (row,) = store.recipients(alerts_db)
    assert (row["role"], row["groups"], row["quiet"], row["enabled"]) == \
        ("class_teacher", "thcs", "21:00-06:30", 1)
    page = c.get("/alerts/recipients").get_data(as_text=True)
    assert "Giáo viên chủ nhiệm" in page and "nam@truong.vn" in page
    r = post(c, "/alerts/recipients", id=str(row["id"]), name="Thầy Nam", role="counsellor",
             email="nam@truong.vn", enabled="1")
    assert r.status_code == 302 and store.recipient(alerts_db, row["id"])["role"] == "counsellor"
    assert post(c, "/alerts/recipients", name="X", role="it", email="x@truong.vn",
                groups="nosuchgroup").status_code == 400
    assert post(c, f"/alerts/recipients/{row['id']}/delete").status_code == 302
    assert store.recipients(alerts_db) == []
    actions = [r[0] for r in alerts_db.conn.execute(
        "SELECT action FROM audit WHERE action LIKE 'alert.recipient.%' ORDER BY id")]
    assert actions == ["alert.recipient.create", "alert.recipient.update",
                       "alert.recipient.delete"]


def test_only_admins_manage_recipients_and_viewers_only_read(as_role, alerts_db):
    aid = _alert(alerts_db)
    c = as_role("teacher")
    assert c.get("/alerts/recipients").status_code == 403
    post(c, "/logout")
    c = as_role("viewer")
    assert c.get(f"/alerts/{aid}").status_code == 200
    assert "Đánh dấu đã xử lý" not in c.get(f"/alerts/{aid}").get_data(as_text=True)
    assert post(c, f"/alerts/{aid}/handle", note="x").status_code == 403
    assert c.get("/alerts/999").status_code == 404


def test_send_a_test_alert_from_the_page(as_role, alerts_db):
    c = as_role("admin")
    assert post(c, "/alerts/test").status_code == 302          # nobody yet: nothing queued
    assert store.list_alerts(alerts_db) == []
    post(c, "/alerts/recipients", name="Cô Lan", role="principal", email="lan@truong.vn",
         enabled="1")
    r = post(c, "/alerts/test")
    assert r.status_code == 302 and "/alerts" in r.headers["Location"]
    (a,) = store.list_alerts(alerts_db)
    assert (a["kind"], a["rule"], a["state"]) == ("health", "test", "due")
    assert alerts_db.conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'alerts.test'"
                                  ).fetchone()[0] == 1
    assert "Thử gửi cảnh báo" in c.get("/alerts?view=all").get_data(as_text=True)
