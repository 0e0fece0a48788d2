"""Policy loading: inheritance, cycles, validation errors with file, line and key."""

from __future__ import annotations

import pytest

from filterd.errors import ConfigError, ConfigErrors
from filterd.policy.decision import BlockMode
from filterd.policy.loader import BUILTIN_DEFAULT, load_policy

from .conftest import BASE_POLICY


def line_no(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


def errs(exc) -> list[tuple[int | None, str | None, str]]:
    items = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    return [(e.line, e.key, e.message) for e in items]


def test_inheritance(write_policy, catalog):
    p = load_policy(write_policy(), catalog)
    older, strict = p.groups["older"], p.groups["strict"]
    assert set(older.block_always) == {"adult", "gambling", "doh"}
    assert set(older.block_during["class"]) == {"games", "social_networks"}
    assert set(strict.block_always) == {"adult", "gambling", "doh", "games"}
    assert strict.safe_search == "strict" and older.youtube == "moderate"
    assert strict.allow.match(["bad.example"]) is None
    assert strict.deny.match(["bad.example", "example"]).rule == "bad.example"
    assert strict.extends == "older" and strict.label_vi == "Nghiêm"
    # the rule source is where the category was written: the base group's line
    src = strict.block_always["adult"]
    assert src.kind == "policy" and src.line == line_no(BASE_POLICY, "always: [adult")
    assert p.default_group == "strict"


def test_unblock_removes_inherited_categories(write_policy, catalog):
    text = BASE_POLICY + """\
  relaxed:
    extends: strict
    label_vi: Thả
    label_en: Relaxed
    unblock: [games, gambling]
    block:
      during:
        class: [games]
    block_mode: nxdomain
"""
    g = load_policy(write_policy({"policy.yaml": text}), catalog).groups["relaxed"]
    assert set(g.block_always) == {"adult", "doh"}
    assert set(g.block_during["class"]) == {"games", "social_networks"}
    assert g.block_mode is BlockMode.NXDOMAIN


def test_extends_cycle(write_policy, catalog):
    text = BASE_POLICY.replace("  base:\n    abstract: true\n",
                               "  base:\n    abstract: true\n    extends: strict\n")
    with pytest.raises(ConfigError) as exc:
        load_policy(write_policy({"policy.yaml": text}), catalog)
    messages = [m for _, _, m in errs(exc.value)]
    assert any("cycle" in m and "base" in m and "strict" in m for m in messages)


def test_self_extends_and_unknown_parent(write_policy, catalog):
    text = BASE_POLICY.replace("extends: older", "extends: strict").replace(
        "extends: base", "extends: nobody")
    with pytest.raises(ConfigError) as exc:
        load_policy(write_policy({"policy.yaml": text}), catalog)
    found = errs(exc.value)
    assert any(k == "groups.strict.extends" and "cycle" in m for _, k, m in found)
    assert any(k == "groups.older.extends" and "unknown group 'nobody'" in m for _, k, m in found)


def test_broken_policy_names_file_line_key_and_reports_everything(write_policy, catalog):
    text = BASE_POLICY.replace("always: [adult, gambling, doh]", "always: [adult, gamblin, doh]")
    text = text.replace("clients: [10.0.41.0/24, 10.0.50.10-10.0.50.20]",
                        "clients: [10.0.41.0/33, 10.0.50.20-10.0.50.10]")
    text = text.replace("youtube: moderate", "youtube: sometimes")
    text = text.replace("        class: [games, social_networks]",
                        "        klass: [games, social_networks]")
    text += "    colour: red\n"
    d = write_policy({"policy.yaml": text})
    with pytest.raises(ConfigErrors) as exc:
        load_policy(d, catalog)
    found = errs(exc.value)
    keys = {k for _, k, _ in found}
    assert {"groups.base.block.always", "groups.strict.clients", "groups.older.youtube",
            "groups.older.block.during.klass", "groups.staff.colour"} <= keys
    line_of = {k: line for line, k, _ in found}
    assert line_of["groups.base.block.always"] == line_no(text, "always: [adult")
    assert line_of["groups.older.youtube"] == line_no(text, "youtube: sometimes")
    assert all(e.file == str(d / "policy.yaml") for e in exc.value.errors)
    text_out = str(exc.value)
    line = line_no(text, "always: [adult")
    assert f"{d / 'policy.yaml'}:{line}: groups.base.block.always: unknown category 'gamblin'" \
        in text_out


def test_overlapping_windows_in_one_schedule(write_policy, catalog):
    text = BASE_POLICY.replace('times: ["07:00-11:30", "13:30-17:00"]',
                               'times: ["07:00-11:30", "11:00-17:00"]')
    with pytest.raises(ConfigError) as exc:
        load_policy(write_policy({"policy.yaml": text}), catalog)
    (line, key, msg), = errs(exc.value)
    assert key == "schedules.class.windows[1].times" and "overlaps" in msg
    assert line == line_no(text, "times: [")


def test_duplicate_client_across_groups(write_policy, catalog):
    text = BASE_POLICY.replace("clients: [10.0.2.0/24,", "clients: [10.0.41.0/24, 10.0.2.0/24,")
    with pytest.raises(ConfigError) as exc:
        load_policy(write_policy({"policy.yaml": text}), catalog)
    (_line, key, msg), = errs(exc.value)
    assert key == "groups.staff.clients" and "already in group 'strict'" in msg


def test_split_files_and_duplicates_across_files(write_policy, catalog):
    sched, groups = BASE_POLICY.split("groups:\n")
    files = {"a.yaml": sched, "b.yaml": "groups:\n" + groups}
    p = load_policy(write_policy(files), catalog)
    assert set(p.groups) >= {"older", "strict"} and "class" in p.schedules
    files["c.yaml"] = "groups:\n  staff:\n    label_vi: x\n    label_en: y\n"
    with pytest.raises(ConfigError) as exc:
        load_policy(write_policy(files), catalog)
    assert "already defined in" in str(exc.value) and exc.value.file.endswith("c.yaml")


def test_no_default_group_means_builtin_strict_group(write_policy, catalog):
    text = BASE_POLICY.replace("default_group: strict\n", "")
    p = load_policy(write_policy({"policy.yaml": text}), catalog)
    assert p.default_group == BUILTIN_DEFAULT
    g = p.groups[BUILTIN_DEFAULT]
    assert set(g.block_always) == set(catalog) and g.safe_search == "strict"


@pytest.mark.parametrize(("old", "new", "key"), [
    ("default_group: strict", "default_group: nobody", "default_group"),
    ("default_group: strict", "default_group: base", "default_group"),
    ("  - olm.vn", "  - 'not a domain'", "education"),
    ("files: [protected.txt]", "files: [missing.txt]", "protected.files"),
    ("version: 1", "version: 2", "version"),
    ("allow: [games-edu.example", "allow: ['*.games-edu.example'", "groups.older.allow"),
    ("    label_vi: Nghiêm\n", "", "groups.strict.label_vi"),
    ("times: [\"07:00-11:30\"", "times: [\"07:00-25:30\"", "schedules.class.windows[1].times"),
    ("days: mon-sat", "days: mon-fri,sun-sat", "schedules.class.windows[1].days"),
])
def test_single_errors(write_policy, catalog, old, new, key):
    text = BASE_POLICY.replace(old, new, 1)
    assert text != BASE_POLICY
    with pytest.raises(ConfigError) as exc:
        load_policy(write_policy({"policy.yaml": text}), catalog)
    assert [k for _, k, _ in errs(exc.value)] == [key]


def test_protected_file_errors_name_the_line(write_policy, catalog):
    d = write_policy(protected="# comment\nok.test\nbad name.test\n")
    with pytest.raises(ConfigError) as exc:
        load_policy(d, catalog)
    assert exc.value.file.endswith("protected.txt") and exc.value.line == 3


def test_protected_feed(write_policy, catalog, tmp_path):
    feed = tmp_path / "feed.txt"
    feed.write_text("feed-bad.test\n=exact.test\n")
    text = BASE_POLICY.replace("files: [protected.txt]",
                               f"files: [protected.txt]\n  feed: {feed}")
    p = load_policy(write_policy({"policy.yaml": text}), catalog)
    assert p.protected.match(["a.feed-bad.test", "feed-bad.test", "test"]).source.name == str(feed)
    feed.unlink()
    with pytest.raises(ConfigError, match="feed file not found"):
        load_policy(write_policy({"policy.yaml": text}), catalog)


def test_shipped_policy_is_valid(catalog):
    from filterd.config import REPO_ROOT
    p = load_policy(REPO_ROOT / "policies", catalog)
    assert {"mam_non", "tieu_hoc", "thcs", "thpt", "giao_vien", "khach"} <= set(p.groups)
    assert p.groups[p.default_group].extends == "mam_non"
    students = [g for g in p.groups.values() if g.id not in ("giao_vien",)]
    for g in students:
        for cat in ("adult", "gambling", "drugs", "violence", "malware", "phishing", "scam",
                    "doh", "vpn", "redirector"):
            assert cat in g.block_always, (g.id, cat)
    assert set(p.groups["giao_vien"].block_always) == {"malware", "phishing"}
    for g in p.groups.values():
        assert g.label_vi and g.label_en and g.description_vi and g.description_en


def test_hidden_temporary_files_are_ignored(write_policy, catalog):
    d = write_policy()
    (d / ".policy.yaml.tmp.yaml").write_text("groups: {broken: 1}\n")
    (d / "notes.txt").write_text("not yaml: [")
    assert "older" in load_policy(d, catalog).groups
