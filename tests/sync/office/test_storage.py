import pytest

from filterd.sync.office.storage import DuplicateSchool, School, Storage, StorageError

from ..conftest import free_port


def _school(i="s1"):
    return School(i, "THCS A", "Ba Đình", "Hà Nội", "a2V5", "2026-11-01T00:00:00Z")


def test_migrate_is_idempotent_and_schools_round_trip(storage):
    storage.migrate()
    storage.add_school(_school())
    assert storage.school("s1") == _school()
    assert storage.school("nope") is None
    with pytest.raises(DuplicateSchool):
        storage.add_school(_school())
    assert [s.id for s in storage.schools()] == ["s1"]


def test_failed_transaction_leaves_nothing(storage):
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.execute("INSERT INTO schools (id, name, district, province, key_b64, enrolled_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)", ["s2", "n", "d", "p", "k", "t"])
        raise RuntimeError("boom")
    assert storage.school("s2") is None


def test_users(storage):
    storage.set_user("an", "hash1", "viewer")
    storage.set_user("an", "hash2", "admin")
    assert storage.user("an") == ("an", "hash2", "admin")


def test_unknown_url_refused():
    with pytest.raises(StorageError, match="unsupported database URL"):
        Storage("mysql://x")


def test_unreachable_postgres_is_a_clear_error():
    st = Storage(f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    with pytest.raises(StorageError, match="cannot connect"):
        st.migrate()
