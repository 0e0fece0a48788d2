from __future__ import annotations

import pytest

from admin_ui import accounts
from admin_ui.errors import AccountError
from admin_ui.store import open_admin_db


@pytest.fixture
def db(tmp_path):
    d = open_admin_db(tmp_path)
    yield d
    d.conn.close()


def test_password_is_stored_as_argon2_hash(db):
    accounts.create_user(db, "thu.ha", "a long password", "admin")
    stored = db.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("$argon2id$")
    assert "a long password" not in stored


def test_short_password_and_bad_names_are_refused(db):
    with pytest.raises(AccountError):
        accounts.create_user(db, "ok.name", "short", "admin")
    for bad in ("x", "has space", "<script>", "a" * 65):
        with pytest.raises(AccountError):
            accounts.create_user(db, bad, "a long password", "admin")
    with pytest.raises(AccountError):
        accounts.create_user(db, "ok.name", "a long password", "root")


def test_duplicate_name_refused_case_insensitively(db):
    accounts.create_user(db, "Lan", "a long password", "teacher")
    with pytest.raises(AccountError):
        accounts.create_user(db, "lan", "a long password", "viewer")


def test_first_admin_only_while_no_account_exists(db):
    accounts.create_first_admin(db, "admin1", "a long password")
    with pytest.raises(AccountError):
        accounts.create_first_admin(db, "admin2", "a long password")
    assert accounts.user_count(db) == 1


def test_authenticate_right_and_wrong(db):
    accounts.create_user(db, "lan", "a long password", "teacher", ("thcs",))
    user = accounts.authenticate(db, "lan", "a long password", "10.0.0.1")
    assert user is not None and user.role == "teacher" and user.groups == ("thcs",)
    assert accounts.authenticate(db, "lan", "wrong password!", "10.0.0.1") is None
    assert accounts.authenticate(db, "nobody", "a long password", "10.0.0.1") is None


def test_disabled_account_cannot_sign_in(db):
    u = accounts.create_user(db, "lan", "a long password", "teacher")
    accounts.update_user(db, u.id, disabled=True)
    assert accounts.authenticate(db, "lan", "a long password", "10.0.0.1") is None


def test_lockout_after_repeated_failures_even_with_right_password(db):
    accounts.create_user(db, "lan", "a long password", "teacher")
    now = 1_000_000.0
    for _ in range(accounts.MAX_FAILURES):
        assert accounts.authenticate(db, "lan", "wrong", "10.0.0.1", now=now) is None
    with pytest.raises(accounts.LockedOut):
        accounts.authenticate(db, "lan", "a long password", "10.0.0.2", now=now + 1)
    # after the window the right password works again and clears the failures
    later = now + accounts.WINDOW_SECONDS + 1
    assert accounts.authenticate(db, "lan", "a long password", "10.0.0.1", now=later) is not None


def test_one_address_trying_many_names_is_locked_out(db):
    now = 2_000_000.0
    for i in range(accounts.MAX_FAILURES * 4):
        accounts.authenticate(db, f"user{i}", "wrong", "10.9.9.9", now=now)
    with pytest.raises(accounts.LockedOut):
        accounts.authenticate(db, "someone", "x", "10.9.9.9", now=now + 1)
    assert accounts.authenticate(db, "someone", "x", "10.9.9.8", now=now + 1) is None


def test_teacher_acts_only_for_own_groups():
    t = accounts.User(1, "lan", "teacher", ("thcs",), False)
    assert t.can_act_for("thcs") and not t.can_act_for("thpt")
    a = accounts.User(2, "ha", "admin", (), False)
    assert a.can_act_for("thpt")
    v = accounts.User(3, "vi", "viewer", ("thcs",), False)
    assert not v.can_act_for("thcs")
