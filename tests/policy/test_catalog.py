"""The category catalog: the shipped file loads; errors name the line."""

from __future__ import annotations

import pytest

from filterd.errors import ConfigError
from filterd.policy.catalog import parse_catalog
from filterd.yamlsrc import loads


def test_shipped_catalog(catalog):
    assert list(catalog)[:3] == ["illegal", "self_harm", "adult"]
    assert catalog["adult"].sensitive and catalog["games"].label("en") == "Online games"
    assert catalog.rank("illegal") < catalog.rank("adult") < catalog.rank("games")
    assert catalog.rank("unknown") == len(catalog)


def test_errors_name_line_and_key():
    text = ("version: 1\ncategories:\n  adult:\n    vi: A\n    en: A\n    child_vi: a\n"
            "    child_en: a\n    sensitiv: true\n  Bad-Id:\n    vi: x\n")
    with pytest.raises(ConfigError) as exc:
        parse_catalog(loads(text, "c.yaml"), "c.yaml")
    s = str(exc.value)
    assert "c.yaml:8: categories.adult.sensitiv: unknown key" in s
    assert "c.yaml:9: categories.Bad-Id" in s
