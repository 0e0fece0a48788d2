import os
import stat
from datetime import date

import pytest

from filterd.sync.pseudonym import (
    DailyPseudonyms,
    SecretError,
    device_identity,
    load_or_create_secret,
)


def test_secret_is_created_once_private_and_reused(tmp_path):
    path = tmp_path / "sync" / "secret"
    a = load_or_create_secret(path)
    assert len(a) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(path) == a


def test_truncated_secret_is_refused(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"short")
    with pytest.raises(SecretError, match="expected 32 bytes"):
        load_or_create_secret(path)


def test_pseudonym_stable_within_a_day_unrelated_across_days():
    secret = b"s" * 32
    d1 = DailyPseudonyms(secret, date(2026, 11, 23))
    d2 = DailyPseudonyms(secret, date(2026, 11, 24))
    dev = device_identity("10.0.0.5", "AA:BB:CC:DD:EE:FF")
    assert d1.of(dev) == d1.of(dev.upper())
    assert d1.of(dev) != d2.of(dev)
    assert d1.of(dev) != DailyPseudonyms(b"t" * 32, date(2026, 11, 23)).of(dev)
    assert "aa:bb" not in d1.of(dev)


def test_device_identity_prefers_mac():
    assert device_identity("10.0.0.5", "AA:bb:cc:dd:ee:ff") == "mac:aa:bb:cc:dd:ee:ff"
    assert device_identity("10.0.0.5", None) == "ip:10.0.0.5"
    assert device_identity(None, None) is None
