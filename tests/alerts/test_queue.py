"""The deliverer over the real tables with a recording channel: fan-out, quiet hours,
digest, backoff and giving up, claims left by a dead process, health alerts.
(The real SMTP server and webhook are in test_integration.py.)"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from filterd.alerts.email import DeliveryError
from filterd.alerts.health import HealthChecks
from filterd.alerts.queue import Deliverer, DeliverySettings
from filterd.alerts.recipients import Recipient
from filterd.alerts.render import Words
from filterd.policy.alert_rules import AlertRule, AlertRules
from filterd.state import alerts as store

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2026, 12, 1, 10, 5, tzinfo=TZ).timestamp()   # a Tuesday, class time

RULES = AlertRules((
    AlertRule("bao_ve", "Danh sách bảo vệ", "Protected", "protected", frozenset(), None,
              ("principal", "class_teacher")),
    AlertRule("nguoi_lon", "Nhiều trang người lớn", "Adult", "category",
              frozenset({"adult"}), None, ("counsellor",), attempts=3, distinct_names=True,
              digest=True),
), MappingProxyType({}), ("it",))


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail: DeliveryError | None = None

    def send(self, to, rendered, key):
        if self.fail is not None:
            raise self.fail
        self.sent.append((to, rendered.subject, key))


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def setup(tmp_path):
    db = store.open_alerts_db(tmp_path)
    for name, role, email, groups, quiet in (
            ("Cô Lan", "principal", "lan@truong.vn", "", ""),
            ("Thầy Nam", "class_teacher", "nam@truong.vn", "thpt", ""),
            ("Cô Hoa", "class_teacher", "hoa@truong.vn", "thcs", ""),
            ("Cô Mai", "counsellor", "mai@truong.vn", "", "21:00-06:30"),
            ("Anh Tuấn", "it", "tuan@truong.vn", "", "")):
        r = Recipient(name=name, role=role, email=email,
                      groups=tuple(x for x in groups.split(",") if x), quiet=quiet)
        store.save_recipient(db, r.to_values())
    clock = Clock(T0)
    mail = Recorder()
    words = Words("Trường thử", "test", TZ, "https://qt.test", RULES,
                  {"thpt": "THPT", "thcs": "THCS"}, {"illegal": "Vi phạm pháp luật",
                                                    "adult": "Người lớn"})
    d = Deliverer(tmp_path / "filterd.db", lambda: words,
                  DeliverySettings(hold=5, digest_time="16:30", retry_initial=30,
                                   retry_max=120, give_up=3600),
                  email=mail, webhook=Recorder(), clock=clock)
    yield d, db, clock, mail
    db.conn.close()


def hit(db, rule="bao_ve", device="10.10.40.7", group="thpt", ts=T0, n=1, names=("p.test",),
        threshold=1, distinct=False, digest=False):
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")
        return store.record_hits(db.conn, [store.Hit(
            rule, device, device, None, group, "illegal", ts, ts, n, names, threshold,
            distinct, 600.0, digest)], hold=5)


def test_held_then_sent_once_to_the_roles_and_the_class_teacher_of_that_group(setup):
    d, db, clock, mail = setup
    assert hit(db) == 1
    d.run_once()
    assert mail.sent == []                   # held 5 s for more attempts
    hit(db, ts=T0 + 2, n=4)
    clock.t = T0 + 6
    d.run_once()
    assert sorted(to for to, _, _ in mail.sent) == ["lan@truong.vn", "nam@truong.vn"]
    assert all("(5 lần)" in s for _, s, _ in mail.sent)
    assert len({k for _, _, k in mail.sent}) == 2     # one key per message
    clock.t += 60
    hit(db, ts=clock.t)                      # counted into the same alert: no new message
    d.run_once()
    assert len(mail.sent) == 2
    (a,) = store.list_alerts(db)
    assert a["attempts"] == 6


def test_a_new_window_is_a_new_alert(setup):
    d, db, clock, mail = setup
    hit(db)
    clock.t = T0 + 10
    d.run_once()
    hit(db, ts=T0 + 601)
    clock.t = T0 + 610
    d.run_once()
    assert len(mail.sent) == 4 and len(store.list_alerts(db)) == 2


def test_backoff_then_delivered_or_given_up(setup):
    d, db, clock, mail = setup
    hit(db, group="thcs")
    mail.fail = DeliveryError("cannot reach the mail server")
    clock.t = T0 + 6
    d.run_once()
    rows = {r["address"]: r for r in store.recent_messages(db)}
    assert set(rows) == {"lan@truong.vn", "hoa@truong.vn"}
    assert all(r["state"] == "pending" and r["tries"] == 1 and r["next_try"] == T0 + 36
               for r in rows.values())
    for expected in (60, 120, 120):          # doubling, capped at retry_max
        clock.t = max(r["next_try"] for r in store.recent_messages(db))
        d.run_once()
        assert {r["next_try"] - clock.t for r in store.recent_messages(db)} == {expected}
    mail.fail = None
    clock.t += 120
    d.run_once()
    assert sorted(to for to, _, _ in mail.sent) == ["hoa@truong.vn", "lan@truong.vn"]
    assert {r["state"] for r in store.recent_messages(db)} == {"sent"}
    # permanent refusals and the give-up time end the retries
    hit(db, device="10.10.32.9", group="thcs", ts=clock.t)
    mail.fail = DeliveryError("550 no such user", permanent=True)
    clock.t += 6
    d.run_once()
    assert {r["state"] for r in store.recent_messages(db, 2)} == {"failed"}


def test_quiet_hours_hold_a_message_until_they_end(setup):
    d, db, clock, mail = setup
    night = datetime(2026, 12, 1, 22, 0, tzinfo=TZ).timestamp()
    hit(db, rule="nguoi_lon", device="10.10.32.5", group="thcs", ts=night,
        names=("a.test", "b.test", "c.test"), n=3, threshold=3, distinct=True, digest=True)
    # the digest of lower-risk rules: nothing at once, one digest at 16:30 the next day
    clock.t = night + 10
    d.run_once()
    assert mail.sent == []
    clock.t = datetime(2026, 12, 2, 16, 30, tzinfo=TZ).timestamp()
    d.run_once()
    assert [to for to, _, _ in mail.sent] == ["mai@truong.vn"]
    assert "Tổng hợp cảnh báo trong ngày" in mail.sent[0][1]
    # a protected-list alert at 23:10 reaches the counsellor... only after 06:30 (quiet)
    RULES_TO_COUNSELLOR = AlertRules((AlertRule(
        "bao_ve", "Danh sách bảo vệ", "Protected", "protected", frozenset(), None,
        ("counsellor",)),), MappingProxyType({}), ("it",))
    words = d.words_of()
    d.words_of = lambda: Words(words.school_name, words.school_id, TZ, "", RULES_TO_COUNSELLOR)
    late = datetime(2026, 12, 2, 23, 10, tzinfo=TZ).timestamp()
    hit(db, ts=late, device="10.10.32.6", group="thcs")
    clock.t = late + 10
    d.run_once()
    assert len(mail.sent) == 1
    clock.t = datetime(2026, 12, 3, 6, 30, tzinfo=TZ).timestamp()
    d.run_once()
    assert len(mail.sent) == 2 and mail.sent[1][0] == "mai@truong.vn"


def test_a_claim_left_by_a_dead_process_is_sent_again_with_the_same_key(setup):
    d, db, clock, mail = setup
    hit(db, group="thcs")
    clock.t = T0 + 6
    d.fan_out(db, d.words_of(), clock.t)
    claimed = store.claim_due_messages(db, clock.t)     # ... and the process died here
    assert len(claimed) == 2
    d.run_once()
    assert mail.sent == []                   # a live claim is not stolen
    store.release_all_claims(db)             # what start() does
    d.run_once()
    assert sorted(k for _, _, k in mail.sent) == sorted(d.key(m["id"]) for m in claimed)


def test_health_problems_alert_it_once_per_window(setup, tmp_path):
    d, _db, clock, mail = setup
    dropped = [0]
    h = HealthChecks(d.db, tmp_path, upstreams_down=lambda: "1.1.1.1:53, 8.8.8.8:53",
                     dropped=lambda: dropped[0], window=3600, every=60)
    d.extra.append(h)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "current").write_text("x")
    import os
    os.utime(tmp_path / "lists" / "current", (T0 - 72 * 3600, T0 - 72 * 3600))
    dropped[0] = 12
    d.run_once()
    subjects = sorted(s for to, s, _ in mail.sent if to == "tuan@truong.vn")
    assert len(subjects) == 3 and len(mail.sent) == 3
    assert any("Máy chủ DNS phía trên" in s for s in subjects)
    assert any("Danh sách chặn" in s for s in subjects)
    assert any("không ghi kịp" in s for s in subjects)
    clock.t += 120
    d.run_once()
    assert len(mail.sent) == 3               # same problems, same window: no new mail
