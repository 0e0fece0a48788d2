"""Alert rules in the policy: parsed with the rest, refused with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterd.errors import ConfigError, ConfigErrors
from filterd.policy.catalog import load_catalog
from filterd.policy.loader import load_policy

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO / "blocklists" / "categories.yaml")

GROUPS = """\
version: 1
default_group: thpt
groups:
  hoc_sinh:
    abstract: true
    label_vi: Học sinh
    label_en: Students
  thpt:
    extends: hoc_sinh
    label_vi: THPT
    label_en: Upper secondary
  thcs:
    extends: thpt
    label_vi: THCS
    label_en: Lower secondary
  khach:
    label_vi: Khách
    label_en: Guests
"""


def load(tmp_path: Path, alerts: str):
    (tmp_path / "policy.yaml").write_text(GROUPS)
    (tmp_path / "alerts.yaml").write_text(alerts)
    return load_policy(tmp_path, CATALOG)


def errors(exc: pytest.ExceptionInfo) -> list[ConfigError]:
    e = exc.value
    return list(e.errors) if isinstance(e, ConfigErrors) else [e]


def test_the_shipped_policy_alerts_for_students_not_guests():
    p = load_policy(REPO / "policies", CATALOG)
    rules = {r.id: r for r in p.alerts.rules}
    assert set(rules) == {"bao_ve", "tu_hai", "bao_luc", "ma_tuy", "vuot_loc", "nguoi_lon"}
    assert rules["tu_hai"].categories == {"self_harm"} and not rules["tu_hai"].digest
    assert rules["vuot_loc"].attempts == 5 and rules["vuot_loc"].digest
    assert rules["nguoi_lon"].distinct_names and rules["nguoi_lon"].attempts == 10
    for r in rules.values():
        assert "khach" not in r.groups and "giao_vien" not in r.groups
        assert {"thpt", "mam_non", "chua_xac_dinh"} <= r.groups
    assert p.alerts.health_to == ("it",)
    # self-harm is a category the student tiers block
    assert "self_harm" in p.groups["thcs"].block_always


def test_abstract_group_stands_for_every_group_extending_it(tmp_path):
    p = load(tmp_path, """\
alerts:
  devices:
    AA:BB:CC:DD:EE:01: Máy 1
    10.10.0.7: Máy 2
  rules:
    r1:
      label_vi: Một
      label_en: One
      when: category
      categories: [violence]
      groups: [hoc_sinh]
      to: [counsellor]
""")
    (r,) = p.alerts.rules
    assert r.groups == {"hoc_sinh", "thpt", "thcs"}
    assert r.file.endswith("alerts.yaml") and r.line == 6
    assert p.alerts.device_name("10.10.0.9", "aa:bb:cc:dd:ee:01") == "Máy 1"
    assert p.alerts.device_name("10.10.0.7", None) == "Máy 2"


@pytest.mark.parametrize(("body", "line", "key", "words"), [
    ("    when: sometimes\n", 6, "alerts.rules.r1.when", "must be one of protected, category"),
    ("    when: category\n    categories: [violense]\n", 7, "alerts.rules.r1.categories",
     "unknown category 'violense'"),
    ("    when: category\n", 6, "alerts.rules.r1.when", "needs `categories:`"),
    ("    when: protected\n    groups: [thpt, nobody]\n", 7, "alerts.rules.r1.groups",
     "unknown group 'nobody'"),
    ("    when: protected\n    attempts: 0\n", 7, "alerts.rules.r1.attempts",
     "whole number from 1"),
    ("    when: protected\n    digest: yes\n", 7, "alerts.rules.r1.digest", "true or false"),
    ("    when: protected\n    colour: red\n", 7, "alerts.rules.r1.colour", "unknown key"),
])
def test_bad_rule_is_refused_with_file_line_and_key(tmp_path, body, line, key, words):
    text = ("alerts:\n  rules:\n    r1:\n      label_vi: Một\n      label_en: One\n"
            + "".join("  " + ln + "\n" for ln in body.splitlines())
            + "      to: [principal]\n")
    with pytest.raises((ConfigError, ConfigErrors)) as exc:
        load(tmp_path, text)
    found = [e for e in errors(exc) if e.key == key]
    assert found, [str(e) for e in errors(exc)]
    assert found[0].file.endswith("alerts.yaml") and found[0].line == line
    assert words in str(found[0])


def test_unknown_role_and_bad_device_are_refused(tmp_path):
    with pytest.raises((ConfigError, ConfigErrors)) as exc:
        load(tmp_path, """\
alerts:
  devices:
    not-an-address: Máy 1
  health_to: [janitor]
  rules:
    r1:
      label_vi: Một
      label_en: One
      when: protected
      to: [principal, headmaster]
""")
    got = {(e.key, e.line) for e in errors(exc)}
    assert ("alerts.devices.not-an-address", 3) in got
    assert ("alerts.health_to", 4) in got
    assert ("alerts.rules.r1.to", 10) in got


def test_alerts_in_two_files_is_an_error(tmp_path):
    (tmp_path / "more.yaml").write_text("alerts:\n  rules: {}\n")
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, "alerts:\n  rules: {}\n")
    assert "already set in" in str(exc.value)
