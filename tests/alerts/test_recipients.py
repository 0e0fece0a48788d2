"""Recipients: values validated in the constructor; quiet hours in the school's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from filterd.alerts.recipients import Recipient, RecipientError, valid_email

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize("text", ["lan@truong.edu.vn", "hieu.truong+canhbao@gmail.com"])
def test_addresses(text):
    assert valid_email(text)


@pytest.mark.parametrize("text", ["lan", "lan@", "@truong.vn", "lan@truong", "a b@c.vn",
                                  "Lan <lan@truong.vn>", "lan@truong.vn, x@y.vn",
                                  "lan@truong.vn\nBcc: x@y.vn"])
def test_not_addresses(text):
    assert not valid_email(text)
    with pytest.raises(RecipientError) as exc:
        Recipient(name="Cô Lan", role="principal", email=text)
    assert exc.value.field == "email"


def test_needs_a_channel_a_role_and_good_quiet_hours():
    with pytest.raises(RecipientError, match="e-mail address or a webhook"):
        Recipient(name="Cô Lan", role="principal")
    with pytest.raises(RecipientError) as exc:
        Recipient(name="Cô Lan", role="boss", email="lan@truong.vn")
    assert exc.value.field == "role"
    with pytest.raises(RecipientError) as exc:
        Recipient(name="Cô Lan", role="it", webhook="ftp://x")
    assert exc.value.field == "webhook"
    with pytest.raises(RecipientError) as exc:
        Recipient(name="Cô Lan", role="it", email="lan@truong.vn", quiet="22-06")
    assert exc.value.field == "quiet"


def ts(h: int, m: int = 0, day: int = 1) -> float:
    return datetime(2026, 12, day, h, m, tzinfo=TZ).timestamp()


def test_quiet_hours_across_midnight_hold_until_they_end():
    r = Recipient(name="Cô Lan", role="principal", email="lan@truong.vn", quiet="21:00-06:30")
    assert r.not_before(ts(20, 59), TZ) == ts(20, 59)
    assert r.not_before(ts(23, 10), TZ) == ts(6, 30, day=2)
    assert r.not_before(ts(2, 0), TZ) == ts(6, 30)
    assert r.not_before(ts(6, 30), TZ) == ts(6, 30)


def test_class_teacher_hears_only_of_their_groups():
    r = Recipient(name="Thầy Nam", role="class_teacher", email="nam@truong.vn",
                  groups=("thpt",))
    assert r.hears_of("thpt") and not r.hears_of("thcs") and not r.hears_of(None)
    assert Recipient(name="Cô Lan", role="principal", email="lan@truong.vn").hears_of("thcs")
