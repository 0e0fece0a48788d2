"""The one catalog: every code has words in both languages; errors in the reader's language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from filterd.errors import ConfigError, ConfigErrors, ListError
from filterd.policy.catalog import load_catalog
from filterd.policy.decision import Action, BlockMode, Reason
from filterd.policy.loader import load_policy
from filterd.words import format_date, format_datetime, render_error, term, terms
from filterd.words.messages import MESSAGES, message
from filterd.words.terms import KINDS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kind", "codes"), [
    ("reason", [r.value for r in Reason]), ("action", [a.value for a in Action]),
    ("block_mode", [m.value for m in BlockMode]),
])
def test_every_enum_code_has_words(kind, codes):
    for code in codes:
        vi, en = term(kind, code, "vi"), term(kind, code, "en")
        assert vi != code and en != code and vi != en, (kind, code)


def test_every_audit_action_the_admin_page_writes_has_words():
    used = set()
    for path in (REPO / "admin_ui").rglob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r'log_change\(\s*"([a-z_.]+[a-z_])"', text))
        used |= {f"{p}{s}" for p, a, b in re.findall(   # "x." + ("update" if … else "create")
            r'log_change\(\s*"([a-z_.]+\.)"\s*\+\s*\("(\w+)" if \w+ else "(\w+)"\)', text)
                 for s in (a, b)}
        used |= set(re.findall(r'action="([a-z_]+\.[a-z_]+)"', text))
    assert used and used <= set(terms("audit")), used - set(terms("audit"))


def test_both_languages_for_every_word_and_message():
    for kind, table in KINDS.items():
        for code, (vi, en) in table.items():
            assert vi and en, (kind, code)
    for code, (vi, en) in MESSAGES.items():
        names = set(re.findall(r"{(\w+)", en))
        assert set(re.findall(r"{(\w+)", vi)) - {"problem_vi", "why_vi"} <= names | {"problem"}, \
            code


def test_dates_one_format_per_language():
    t = datetime(2026, 12, 1, 18, 11, tzinfo=UTC)          # 01:11 on 2 Dec in Hà Nội
    assert format_datetime(t, "vi") == "02/12/2026 01:11"
    assert format_datetime(t, "en") == "2 Dec 2026, 01:11"
    assert format_datetime(t.timestamp(), "vi", weekday=True) == "Thứ Tư, 02/12/2026 01:11"
    assert format_date(t, "vi") == "02/12/2026" and format_date(t, "en") == "2 Dec 2026"


def test_a_problem_is_reported_once_and_in_vietnamese(tmp_path):
    policy = (REPO / "policies" / "policy.yaml").read_text(encoding="utf-8")
    assert "extends: thpt" in policy
    (tmp_path / "policy.yaml").write_text(policy.replace("extends: thpt", "extends: thtp", 1),
                                          encoding="utf-8")
    (tmp_path / "protected.txt").write_text("", encoding="utf-8")
    catalog = load_catalog(REPO / "blocklists" / "categories.yaml")
    with pytest.raises(ConfigError) as info:
        load_policy(tmp_path, catalog)
    errors = getattr(info.value, "errors", [info.value])
    assert len(errors) == 1, [str(e) for e in errors]      # not once per child group
    vi = render_error(info.value, "vi")
    assert re.match(r".*policy\.yaml:\d+: groups\.\w+\.extends: kế thừa nhóm 'thtp', nhưng",
                    vi)
    assert "extends an unknown group 'thtp'" in str(info.value)   # logs stay English


def test_yaml_syntax_error_has_vietnamese_words(tmp_path):
    (tmp_path / "policy.yaml").write_text("version: 1\ngroups:\n  a:\n    label_vi: x\n"
                                          "   label_en: y\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_policy(tmp_path, load_catalog(REPO / "blocklists" / "categories.yaml"))
    vi = info.value.text("vi")
    assert "policy.yaml:" in vi and "YAML sai cú pháp" in vi and "thụt lề" in vi
    assert "invalid YAML" in info.value.text("en")


def test_every_bad_client_entry_is_reported_at_once(tmp_path):
    (tmp_path / "policy.yaml").write_text(
        "version: 1\ngroups:\n  a:\n    label_vi: A\n    label_en: A\n    clients:\n"
        "      - 10.0.0.300\n      - 10.0.0.9-10.0.0.1\n      - zz:zz\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_policy(tmp_path, load_catalog(REPO / "blocklists" / "categories.yaml"))
    lines = [e.line for e in info.value.errors]
    assert lines == [7, 8, 9]
    assert "khoảng '10.0.0.9-10.0.0.1' bị ngược" in info.value.text("vi")


def test_list_errors_carry_a_code():
    err = ListError.coded("fetch.http", source="ut1-adult", status=404, why="Not Found",
                          url="https://x.test/a.tgz")
    assert str(err) == "ut1-adult: HTTP 404 Not Found from https://x.test/a.tgz"
    assert err.text("vi") == ("ut1-adult: máy chủ https://x.test/a.tgz trả lời lỗi HTTP 404 "
                              "Not Found")
    assert message("no.such.code", "vi") == "no.such.code"
