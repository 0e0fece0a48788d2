from __future__ import annotations

from filterd.state import sessions
from filterd.state.db import open_db


def test_a_session_lives_until_it_expires_or_ends(tmp_path):
    db = open_db(tmp_path / "f.db")
    sessions.init(db)
    a = sessions.create(db, 7, lifetime=100, now=1000.0)
    b = sessions.create(db, 7, lifetime=100, now=1000.0)
    assert sessions.lookup(db, a, now=1050.0) == 7
    assert sessions.lookup(db, a, now=1101.0) is None        # expired, and removed
    assert sessions.lookup(db, "forged", now=1050.0) is None
    assert db.execute("SELECT COUNT(*) FROM sessions WHERE id = ?", [a]).fetchone()[0] == 0
    c = sessions.create(db, 7, lifetime=100, now=1050.0)
    assert sessions.end_user(db, 7, keep=c) == 1 and sessions.lookup(db, b, now=1060) is None
    assert sessions.lookup(db, c, now=1060.0) == 7
    sessions.end(db, c)
    assert sessions.lookup(db, c, now=1060.0) is None
