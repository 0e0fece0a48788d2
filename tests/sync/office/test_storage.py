import pytest

from filterd.sync.office.storage import DuplicateSchool, School, Storage, StorageError

from ..conftest import cut_connections, free_port, new_pg_database


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


def test_page_queries_read_days_through_the_key_not_a_scan(tmp_path):
    """A province keeps millions of count rows a year: every page must reach its days through
    the day-first primary keys (SQLite's plan says SEARCH), never read the whole table."""
    from datetime import UTC, date, datetime

    from filterd.sync.office import queries

    st = Storage(f"sqlite:///{tmp_path / 'o.db'}")
    st.migrate()
    seen: list[tuple[str, tuple]] = []
    run = st.query

    def record(sql, params=()):
        seen.append((sql, tuple(params)))
        return run(sql, params)

    st.query = record
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    queries.blocks(st, start, end)
    queries.blocks(st, start, end, "Ba Đình")
    queries.top(st, start, end)
    queries.bypass(st, start, end)
    queries.yearly(st, start, end)
    queries.reporting_status(st, end)
    queries.freshness(st, datetime.now(UTC))
    plans = {}
    for sql, params in seen:
        if "report_" in sql:
            plan = " | ".join(r[3] for r in run("EXPLAIN QUERY PLAN " + sql, params))
            plans[sql] = plan
            assert not any(f"SCAN {t}" in plan or f"SCAN {a}" in plan
                           for t, a in (("report_counts", "c"), ("report_top", "t"),
                                        ("report_bypass", "b"))), (sql, plan)
    assert len(plans) >= 8
    st.close()


def test_connection_lost_between_requests_reconnects(postgres_server):
    st = Storage(new_pg_database(postgres_server))
    st.migrate()
    try:
        st.add_school(_school())
        old = cut_connections(st)
        # A read and a write each find their connection dead, reconnect, and succeed.
        assert st.school("s1") == _school()
        cut_connections(st)
        st.add_school(_school("s2"))
        assert [s.id for s in st.schools()] == ["s1", "s2"]
        assert st._local.conn.info.backend_pid not in old
    finally:
        st.close()


def test_connection_lost_mid_transaction_is_a_storage_error_and_nothing_stored(postgres_server):
    st = Storage(new_pg_database(postgres_server))
    st.migrate()
    try:
        st.school("warm")   # this thread's connection exists
        with pytest.raises(StorageError, match="office database error"), \
                st.transaction() as tx:
            tx.execute("INSERT INTO schools (id, name, district, province, key_b64, enrolled_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)", ["s3", "n", "d", "p", "k", "t"])
            cut_connections(st)
            tx.execute("INSERT INTO schools (id, name, district, province, key_b64, enrolled_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)", ["s4", "n", "d", "p", "k", "t"])
        # The next request works, and the interrupted transaction left nothing.
        assert st.school("s3") is None and st.school("s4") is None
    finally:
        st.close()


def test_sqlite_operational_error_is_a_storage_error(tmp_path):
    st = Storage(f"sqlite:///{tmp_path / 'o.db'}")
    st.migrate()
    try:
        with pytest.raises(StorageError, match="no such table"):
            st.query("SELECT * FROM no_such_table")
    finally:
        st.close()
