from __future__ import annotations

from datetime import UTC, datetime

from filterd.http.eventsink import MemorySink, NullSink, record
from filterd.policy.decision import Action, Decision, Query, Reason, RuleSource
from filterd.state.events import EventLog


def sample(path: str = "intercept") -> tuple[Decision, Query]:
    at = datetime.now(UTC)
    d = Decision(Action.BLOCK, Reason.CATEGORY, "casino.test", "thcs", at, "casino.test",
                 RuleSource("list", "ut1-gambling", "v1"), category="gambling")
    return d, Query("casino.test", "10.0.0.1", at, path=path, url="https://casino.test/x")


class OldSink:
    def __init__(self) -> None:
        self.calls = []

    def record(self, decision, query):
        self.calls.append((decision, query))


def test_search_term_only_to_sinks_that_take_it():
    d, q = sample()
    old, mem = OldSink(), MemorySink()
    record(old, d, q, search_term="cats")
    record(mem, d, q, search_term="cats")
    record(NullSink(), d, q, search_term="cats")
    assert old.calls == [(d, q)]
    assert mem.records == [(d, q, {"search_term": "cats"})]


def test_the_real_event_log_stores_path_url_and_term(tmp_path):
    log = EventLog(tmp_path / "filterd.db", flush_interval=0.05).start()
    d, q = sample()
    record(log, d, q, search_term="cats")
    d2, q2 = sample("sni")
    record(log, d2, q2)
    log.close()
    import sqlite3

    rows = sqlite3.connect(tmp_path / "filterd.db").execute(
        "SELECT path, url, search_term, category FROM events ORDER BY id").fetchall()
    assert rows == [("intercept", "https://casino.test/x", "cats", "gambling"),
                    ("sni", None, None, "gambling")]
