"""The office's daily report says how many alerts were sent, and nothing else of them."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

from filterd.state import alerts as store
from filterd.state.db import open_db
from filterd.sync.report import build_report
from filterd.sync.schema import validate

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2026, 12, 1)


def _sent(db, device: str, ts: float, *, group="thcs") -> None:
    with db.conn:
        store.record_hits(db.conn, [store.Hit(
            rule="tu_hai", device=device, client_ip=device, client_mac=None, group_id=group,
            category="self_harm", first_ts=ts, last_ts=ts, attempts=2,
            names=("secret-site.test",), threshold=1, distinct_names=False, window=600,
            digest=False)], hold=0)
    aid = db.conn.execute("SELECT MAX(id) FROM alerts").fetchone()[0]
    store.queue_messages(db, [(store.Outgoing(1, "Cô Mai", "email", "mai@truong.vn", ts),
                               [aid]), (store.Outgoing(2, "Thầy Nam", "email", "nam@truong.vn",
                                                       ts), [aid])], [aid], now=ts)
    for (mid,) in db.conn.execute("SELECT id FROM alert_messages WHERE alert_id = ?", [aid]):
        store.mark_sent(db, mid, "s", ts + 5)


def _report(db, k=3):
    r = build_report(db.conn, school_id="thcs-ba-dinh", day=DAY, tz=TZ, secret=b"s" * 32, k=k)
    validate(r, thorough=True)
    return r


def test_alerts_sent_is_counted_only_with_k_devices_behind_it(tmp_path):
    db = open_db(tmp_path / "filterd.db")
    store.init_db(db)
    assert _report(db)["alerts_sent"] == 0
    ten = datetime(2026, 12, 1, 10, 5, tzinfo=TZ).timestamp()
    _sent(db, "10.10.32.7", ten)
    _sent(db, "10.10.32.8", ten + 60)
    r = _report(db)
    assert r["alerts_sent"] == "fewer_than_k"   # two devices: fewer than k = 3
    _sent(db, "10.10.32.9", ten + 120)
    _sent(db, "10.10.32.9", ten + 3600)      # the same device again: 4 alerts, 3 devices
    _sent(db, "10.10.32.10", datetime(2026, 12, 2, 0, 30, tzinfo=TZ).timestamp())  # next day
    r = _report(db)
    assert r["alerts_sent"] == 4             # alerts, not messages (each went to two people)
    text = json.dumps(r, ensure_ascii=False)
    for private in ("10.10.32", "secret-site", "tu_hai", "self_harm", "Cô Mai", "mai@"):
        assert private not in text


def test_a_database_without_alert_tables_sent_none(tmp_path):
    db = open_db(tmp_path / "filterd.db")
    assert _report(db)["alerts_sent"] == 0
