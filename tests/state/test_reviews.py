from __future__ import annotations

import sqlite3

import pytest

from filterd.state.reviews import (
    MAX_MESSAGE,
    RateLimited,
    ReviewError,
    ReviewRequest,
    ReviewStore,
    clean_message,
)


def req(**kw) -> ReviewRequest:
    base = dict(name="casino.test", url="http://casino.test/", group_id="thcs",
                category="gambling", reason="category", message="please", client_ip="10.0.0.1")
    base.update(kw)
    return ReviewRequest(**base)


def test_store_and_list(tmp_path):
    store = ReviewStore(tmp_path)
    rid = store.add(req())
    (row,) = store.open_reviews()
    assert row["id"] == rid and row["status"] == "open" and row["message"] == "please"
    store.close()
    ReviewStore(tmp_path).close()   # migrations are idempotent


def test_rate_limit_per_client_and_window(tmp_path):
    store = ReviewStore(tmp_path, per_client=2, window=60)
    store.add(req(), now=1000)
    store.add(req(), now=1001)
    with pytest.raises(RateLimited):
        store.add(req(), now=1002)
    store.add(req(client_ip="10.0.0.2"), now=1002)
    store.add(req(), now=1061)


def test_limits_enforced_by_value_and_by_schema(tmp_path):
    with pytest.raises(ReviewError):
        req(message="x" * (MAX_MESSAGE + 1))
    store = ReviewStore(tmp_path)
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("INSERT INTO reviews (created_at, name, message) VALUES (1, 'a', ?)",
                         ["x" * 501])
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("INSERT INTO reviews (created_at, name, status) VALUES (1, 'a', 'maybe')")


def test_clean_message():
    assert clean_message("  hi\x00\x1b[31m\u202ethere\n ") == "hi[31mthere"
    assert len(clean_message("é" * 2000)) == MAX_MESSAGE
    assert clean_message("<b>x</b>") == "<b>x</b>"   # stored as text; every page escapes it
