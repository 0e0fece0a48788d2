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
    """Two DNS workers start together: the second reads "not applied", waits for the
    write lock the first holds, and must then see the step done (it used to fail with
    'table ... already exists' and the worker died)."""
    import threading

    first, second = open_db(tmp_path / "x.db"), open_db(tmp_path / "x.db")
    migrate(first, "setup", [])          # both see the _migrations table
    result: list[object] = []
    read = threading.Event()

    def other() -> None:
        try:
            result.append(migrate(second, "mod", [lambda d: d.execute("CREATE TABLE t (x)")]))
        except Exception as exc:   # the test reports it
            result.append(exc)

    def slow_step(d) -> None:
        t = threading.Thread(target=other)
        t.start()
        read.wait(0.5)             # the other has read the version table by now
        d.execute("CREATE TABLE t (x)")
        slow_step.thread = t

    assert migrate(first, "mod", [slow_step]) == 1
    slow_step.thread.join(10)
    assert result == [0]
