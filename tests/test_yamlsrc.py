"""The line-keeping YAML loader."""

from __future__ import annotations

import pytest

from filterd.errors import ConfigError
from filterd.yamlsrc import YList, YMap, loads


def test_lines_of_keys_and_items():
    doc = loads("a: 1\nb:\n  c: [x, y]\n  d:\n    - p\n    - q\n", "f.yaml")
    assert isinstance(doc, YMap) and doc.file == "f.yaml"
    assert doc.line_of("a") == 1 and doc.line_of("b") == 2
    assert doc["b"].line_of("d") == 4
    assert isinstance(doc["b"]["d"], YList) and doc["b"]["d"].line_of(1) == 6


def test_yaml_1_2_scalars():
    doc = loads("a: off\nb: no\nc: 07:00\nd: true\ne: 010\nf: 1.5\ng: ~\nh: 2026-01-01\n")
    assert doc == {"a": "off", "b": "no", "c": "07:00", "d": True, "e": 10, "f": 1.5,
                   "g": None, "h": "2026-01-01"}


def test_duplicate_keys_and_syntax_errors():
    with pytest.raises(ConfigError) as exc:
        loads("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert (exc.value.line, exc.value.key) == (3, "a")
    with pytest.raises(ConfigError) as exc:
        loads("a: [1\n", "f.yaml")
    assert exc.value.file == "f.yaml"


def test_unsafe_tags_are_refused():
    with pytest.raises(ConfigError):
        loads("a: !!python/object/apply:os.system ['true']\n")
