"""The report's schema is versioned and documented: docs/privacy.md names every field of
report.schema.json, and the version in the file, the code and the page agree."""

import json
import re
from pathlib import Path

from filterd.sync import report, schema

REPO = Path(__file__).resolve().parents[2]


def _property_names(node) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        names |= set(node.get("properties", {}))
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


def test_every_field_of_the_schema_is_documented():
    doc = (REPO / "docs" / "privacy.md").read_text()
    fields = doc.split("## Fields", 1)[1].split("## Never sent", 1)[0]
    documented = set(re.findall(r"`([$a-z_]+)`", fields))
    names = _property_names(json.loads(schema.SCHEMA_FILE.read_text()))
    assert len(names) > 25
    assert names <= documented, f"not in docs/privacy.md: {sorted(names - documented)}"


def test_schema_version_agrees_everywhere():
    data = json.loads(schema.SCHEMA_FILE.read_text())
    version = report.SCHEMA_VERSION
    assert data["$id"] == report.SCHEMA_ID and data["$id"].endswith(f"/{version}")
    assert data["properties"]["schema_version"] == {"const": version}
    assert data["properties"]["$schema"] == {"const": data["$id"]}
    doc = (REPO / "docs" / "privacy.md").read_text()
    assert f"## Fields (schema version {version})" in doc
    assert f"daily-report/{version}" in doc
