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


def test_two_processes_migrating_at_once_apply_each_step_once(tmp_path):
    """Two DNS workers start together: the second reads "not applied", then waits for the
    write lock while the first applies the step; it must then see the step done (it used
    to fail with 'table ... already exists' and the worker died)."""
    import sqlite3

    import sqlite_utils

    path = tmp_path / "x.db"
    first = open_db(path)
    migrate(first, "setup", [])          # the _migrations table exists for both
    steps = [lambda d: d.execute("CREATE TABLE t (x)")]

    class Late(sqlite3.Connection):
        """The second process: the first one commits just before it takes the lock."""

        def execute(self, sql, *args):
            if sql == "BEGIN IMMEDIATE" and not getattr(self, "raced", False):
                self.raced = True
                assert migrate(first, "mod", steps) == 1
            return super().execute(sql, *args)

    second = sqlite_utils.Database(sqlite3.connect(str(path), isolation_level=None,
                                                   factory=Late))
    assert migrate(second, "mod", steps) == 0
    assert first.execute("SELECT COUNT(*) FROM _migrations WHERE module = 'mod'"
                         ).fetchone()[0] == 1
