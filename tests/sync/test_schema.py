import copy
import gzip
import json
from datetime import UTC, date, datetime

import fastjsonschema
import jsonschema
import pytest

from filterd.sync import schema
from filterd.sync.report import Health, ListInfo, build_report

from .conftest import TZ, generate_days, make_event_db


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


def _leaves(node, path=()):
    """Every path in a report, containers included."""
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))


def _accepts(check, report) -> bool:
    try:
        check(report)
    except (schema.ReportError, fastjsonschema.JsonSchemaValueException,
            jsonschema.ValidationError):
        return False
    return True


@pytest.fixture
def rich_report(tmp_path):
    conn = make_event_db(tmp_path / "r.db")
    day = date(2026, 11, 24)
    generate_days(conn, [day], per_day=400)
    r = build_report(conn, school_id="s1", day=day, tz=TZ, secret=b"x" * 32, k=3,
                     lists=ListInfo("v1.2", datetime(2026, 11, 24, 1, tzinfo=UTC)),
                     health=Health(10, 0, 2))
    assert r["top_blocked"] and r["bypass"] and r["devices"]
    # keep it small enough to mutate every field
    r["counts"] = r["counts"][:3]
    r["top_blocked"] = {c: v[:1] for c, v in list(r["top_blocked"].items())[:2]}
    return r


BAD_VALUES = [True, False, None, 1.5, 3.0, -1, 0, 10**12, "", "x", "A B", "10.0.0.1",
              "https://x.example/a", [], [1], {}, {"a": 1}]


def test_fast_and_reference_validators_agree_on_every_field(rich_report):
    """The office decides with fastjsonschema; it must refuse exactly what the reference
    jsonschema refuses, field by field, for wrong types, ranges and extra or missing keys."""
    reference = schema._validator().validate
    fast = schema._fast()
    assert _accepts(fast, rich_report) and _accepts(reference, rich_report)
    tried = 0
    for path in list(_leaves(rich_report))[1:]:
        mutations = [("set", v) for v in BAD_VALUES] + [("drop", None)]
        if isinstance(_get(rich_report, path), dict):
            mutations.append(("extra", None))
        for kind, value in mutations:
            r = copy.deepcopy(rich_report)
            parent, key = _get(r, path[:-1]), path[-1]
            if kind == "set":
                parent[key] = value
            elif kind == "drop":
                parent.pop(key)
            else:
                parent[key]["client_ip"] = "10.0.0.1"
            verdicts = (_accepts(fast, r), _accepts(reference, r))
            assert verdicts[0] == verdicts[1], (path, kind, value, verdicts)
            tried += 1
    assert tried > 1000


def _get(node, path):
    for p in path:
        node = node[p]
    return node


def test_fast_validator_is_not_fooled_by_a_final_newline(report):
    report["counts"] = [{"group": "thcs\n", "category": "adult", "action": "block", "hour": 1,
                         "n": 1}]
    with pytest.raises(schema.ReportError, match="counts/0/group"):
        schema.validate(report)


@pytest.mark.parametrize("number", ["3.0", "1e3", "NaN", "Infinity"])
def test_numbers_must_be_integers_on_the_wire(report, number):
    report["counts"] = [{"group": "thcs", "category": "adult", "action": "block", "hour": 1,
                         "n": 7}]
    text = schema.dumps(report).decode().replace('"n":7', f'"n":{number}')
    with pytest.raises(schema.ReportError, match="not an integer"):
        schema.decode(gzip.compress(text.encode()))
