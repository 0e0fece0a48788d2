from __future__ import annotations

import os
import stat

import pytest

from admin_ui.security import SECRET_FILE, load_or_create_secret


def test_secret_created_once_0600(tmp_path):
    s1 = load_or_create_secret(tmp_path)
    s2 = load_or_create_secret(tmp_path)
    assert s1 == s2 and len(s1) == 48
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600


def test_loosened_secret_is_tightened(tmp_path):
    load_or_create_secret(tmp_path)
    os.chmod(tmp_path / SECRET_FILE, 0o644)
    load_or_create_secret(tmp_path)
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600


def test_truncated_secret_fails_closed(tmp_path):
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(RuntimeError):
        load_or_create_secret(tmp_path)
