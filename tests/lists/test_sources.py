from __future__ import annotations

from pathlib import Path

import pytest

from filterd.errors import ConfigError
from filterd.lists.seed import BLOCKLISTS_DIR
from filterd.lists.sources import load_sources

CATS = {"adult", "gambling", "scam"}


def test_shipped_sources_load() -> None:
    sources = load_sources(BLOCKLISTS_DIR / "sources.yaml")
    names = {s.name for s in sources}
    assert {"ut1-adult", "ut1-drogue", "ut1-agressif", "ut1-tiktok", "hostsvn-adult",
            "hostsvn-gambling-vn", "hostsvn-threat"} <= names
    by = {s.name: s for s in sources}
    assert by["ut1-drogue"].category == "drugs" and by["ut1-agressif"].category == "violence"
    assert by["ut1-strict_redirector"].category == "redirector"
    assert by["ut1-audio-video"].category == "audio_video"
    assert by["ut1-tiktok"].category == "short_video"
    assert by["hostsvn-adult"].exact and not by["ut1-adult"].exact
    assert not by["ut1-phishing"].enabled
    assert all(s.url.startswith("https://") for s in sources)
    assert {s.license for s in sources} == {"CC BY-SA 4.0", "MIT"}


GOOD = """version: 1
sources:
  - name: a
    url: https://example.org/a.txt
    format: domains
    category: adult
    license: MIT
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sources.yaml"
    p.write_text(text)
    return p


def test_defaults_apply(tmp_path: Path) -> None:
    text = GOOD.replace("version: 1\n", "version: 1\ndefaults:\n  max_shrink: 0.2\n")
    (s,) = load_sources(write(tmp_path, text), CATS)
    assert s.match == "subtree" and s.enabled and s.max_shrink == 0.2


@pytest.mark.parametrize(("change", "line", "key"), [
    (("    license: MIT\n", "    license: MIT\n    colour: red\n"), 8, "a.colour"),
    (("category: adult", "category: porn"), 6, "a.category"),
    (("format: domains", "format: csv"), 3, "a.format"),
    (("format: domains", "format: ut1\n    match: exact"), 3, "a.match"),
    (("https://example.org/a.txt", "ftp://example.org/a"), 3, "a.url"),
    (("    license: MIT\n", "    license: MIT\n    max_shrink: 2\n"), 3, "a.max_shrink"),
    (("    license: MIT\n", "    license: MIT\n    enabled: yes please\n"), 8, "a.enabled"),
    (("version: 1", "version: 2"), 1, "version"),
])
def test_errors_name_line_and_key(tmp_path: Path, change: tuple[str, str], line: int,
                                  key: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_sources(path, CATS)
    assert err.value.file == str(path)
    assert (err.value.line, err.value.key) == (line, key)


def test_duplicate_names(tmp_path: Path) -> None:
    text = GOOD + GOOD.split("sources:\n", 1)[1]
    with pytest.raises(ConfigError, match="duplicate") as err:
        load_sources(write(tmp_path, text), CATS)
    assert err.value.line == 8


def test_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="YAML") as err:
        load_sources(write(tmp_path, "version: 1\nsources: [\n"), CATS)
    assert err.value.line is not None
