import gzip
import json
from datetime import date

import pytest

from filterd.sync import schema
from filterd.sync.report import build_report

from .conftest import TZ, make_event_db


@pytest.fixture
def report(tmp_path):
    conn = make_event_db(tmp_path / "f.db")
    return build_report(conn, school_id="s1", day=date(2026, 11, 24), tz=TZ, secret=b"x" * 32)


def test_a_built_report_matches_the_schema_and_round_trips(report):
    data = schema.encode(report)
    assert schema.decode(data) == report
    assert schema.encode(report) == data  # reproducible bytes


@pytest.mark.parametrize("path,value,where", [
    (("counts",), [{"group": "thcs", "category": "adult", "action": "block", "hour": 24, "n": 1}],
     "counts/0/hour"),
    (("devices",), {"10.0.0.1": 3}, "devices"),
    (("health", "version"), "1.0 http://x", "health/version"),
    (("top_blocked",), {"adult": [{"name": "https://x.com/a?q=b", "devices": 5, "hits": 5}]},
     "top_blocked/adult/0/name"),
    (("top_blocked",), {"adult": [{"name": "x.com", "devices": 2, "hits": 5}]},
     "top_blocked/adult/0/devices"),
    (("k_anonymity",), 2, "k_anonymity"),
])
def test_fields_outside_the_schema_are_refused_with_their_place(report, path, value, where):
    target = report
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    with pytest.raises(schema.ReportError, match=where):
        schema.validate(report)


def test_unknown_field_is_refused(report):
    report["client_ips"] = ["10.0.0.1"]
    with pytest.raises(schema.ReportError, match="Additional properties"):
        schema.encode(report)


def test_gzip_bomb_is_refused_without_expanding():
    bomb = gzip.compress(b"{" + b" " * (50 * 1024 * 1024) + b"}")
    assert len(bomb) < 100_000
    with pytest.raises(schema.ReportError, match="expands beyond"):
        schema.decode(bomb, limit=1024 * 1024)


def test_garbage_and_truncated_gzip_refused(report):
    with pytest.raises(schema.ReportError, match="gzip"):
        schema.decode(b"not gzip at all")
    with pytest.raises(schema.ReportError, match="truncated"):
        schema.decode(schema.encode(report)[:-12])
    with pytest.raises(schema.ReportError, match="JSON"):
        schema.decode(gzip.compress(b"{nope"))
    assert json.loads(gzip.decompress(schema.encode(report)))["school_id"] == "s1"
