import pytest

from filterd.state.db import migrate, open_db


def test_migrations_apply_once_per_module(tmp_path):
    db = open_db(tmp_path / "x.db")
    steps = [lambda d: d.execute("CREATE TABLE a (x)"), lambda d: d.execute("CREATE TABLE b (y)")]
    assert migrate(db, "mod", steps) == 2
    assert migrate(db, "mod", steps) == 0
    assert migrate(db, "other", steps[:1][:0]) == 0
    assert set(db.table_names()) >= {"a", "b", "_migrations"}
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_migration_step_is_rolled_back(tmp_path):
    db = open_db(tmp_path / "x.db")

    def bad(d):
        d.execute("CREATE TABLE c (z)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        migrate(db, "mod", [bad])
    assert "c" not in db.table_names()
    assert migrate(db, "mod", [lambda d: d.execute("CREATE TABLE c (z)")]) == 1
