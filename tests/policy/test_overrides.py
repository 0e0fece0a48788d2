"""Overrides: JSON round trip, atomic save, expiry by query time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from filterd.errors import ConfigError
from filterd.policy.overrides import Override, OverrideSet
from filterd.state.overrides import load as load_overrides
from filterd.state.overrides import save as save_overrides

T = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def ov(i="o1", group="thcs", domain="YouTube.com", minutes=45):
    return Override(i, group, domain, T + timedelta(minutes=minutes), "co.lan", "Sinh học",
                    created_at=T)


def test_round_trip(tmp_path):
    s = OverrideSet([ov(), ov("o2", domain="trường.vn")])
    path = tmp_path / "d" / "overrides.json"
    save_overrides(path, s)
    back = load_overrides(path, ["thcs"])
    assert [o.to_dict() for o in back] == [o.to_dict() for o in s]
    assert back.match("thcs", ["xn--trng-rib8295b.vn", "vn"], T) is not None
    assert list(tmp_path.joinpath("d").iterdir()) == [path]   # no temp file left


def test_match_by_group_subdomain_and_time():
    s = OverrideSet([ov()])
    assert s.match("thcs", ["m.youtube.com", "youtube.com", "com"], T).id == "o1"
    assert s.match("thpt", ["youtube.com", "com"], T) is None
    assert s.match("thcs", ["youtube.com", "com"], T + timedelta(minutes=45)) is None
    assert len(s.active(T + timedelta(minutes=50))) == 0


def test_added_removed():
    s = OverrideSet().added(ov())
    with pytest.raises(ValueError):
        s.added(ov())
    assert len(s.removed("o1")) == 0


def test_missing_file_is_empty(tmp_path):
    assert len(load_overrides(tmp_path / "none.json")) == 0


@pytest.mark.parametrize("text", ['{"version": 2, "overrides": []}', "[]",
                                  '{"version": 1, "overrides": [{"id": "x"}]}',
                                  '{"version": 1, "overrides": [{"id": "x", "group": "g", '
                                  '"domain": "a.b", "expires_at": "2026-01-01T00:00"}]}'])
def test_invalid_files(tmp_path, text):
    p = tmp_path / "o.json"
    p.write_text(text)
    with pytest.raises(ConfigError):
        load_overrides(p)


def test_naive_times_refused():
    with pytest.raises(ValueError):
        Override("a", "g", "x.example", datetime(2026, 1, 1), "t", "r")


def test_override_covers_the_services_companion_domains():
    s = OverrideSet([ov(domain="youtube.com")])
    assert s.match("thcs", ["rr1---sn-abc.googlevideo.com", "googlevideo.com", "com"], T).id == "o1"
    assert s.match("thcs", ["i.ytimg.com", "ytimg.com", "com"], T) is not None
    assert s.match("thcs", ["fbcdn.net", "net"], T) is None
    assert OverrideSet([ov(domain="example.com")]).match("thcs", ["googlevideo.com", "com"],
                                                          T) is None
