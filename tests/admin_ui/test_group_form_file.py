"""The group form writes only the keys it edits: the rest of the policy file, comments
included, stays byte for byte; every problem of a submitted form is shown at once,
beside its field, in the page's language."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import pytest

from admin_ui import create_app, policy_edit
from tests.admin_ui.conftest import REPO, https_client, login, post

pytestmark = pytest.mark.integration


@pytest.fixture
def real(tmp_path: Path):
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    policy = tmp_path / "policies" / "policy.yaml"
    # a hand-edited file: a comment inside another group's list, odd spacing, a flow list
    text = policy.read_text(encoding="utf-8")
    text = text.replace("      - 10.10.20.0/22            # example: primary classrooms",
                        "      - 10.10.20.0/22            # example: primary classrooms\n"
                        "      # room 12 is shared with the library\n"
                        "      - 10.10.24.0/24   #  phòng 12")
    policy.write_text(text, encoding="utf-8")
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\npolicy_dir: {tmp_path / 'policies'}\n",
                   encoding="utf-8")
    app = create_app(cfg, {"TESTING": True})
    from admin_ui.accounts import create_user
    from admin_ui.store import open_admin_db

    db = open_admin_db(tmp_path / "data")
    create_user(db, "admin1", "a long password", "admin")
    db.conn.close()
    c = https_client(app)
    assert login(c, "admin1", "a long password").status_code == 302
    return app, c, policy


def form_data(app, gid: str, **changes) -> dict:
    """What the browser sends for the form as shown, with `changes` typed in."""
    with app.app_context():
        f = policy_edit.group_form(app.extensions["filterd"], gid)
    data = {"label_vi": f.label_vi, "label_en": f.label_en, "always": sorted(f.always),
            "allow": "\n".join(f.allow), "deny": "\n".join(f.deny),
            "clients": "\n".join(f.clients), "safe_search": f.safe_search,
            "youtube": f.youtube, "block_mode": f.block_mode, "reason": "test"}
    for s in f.schedules:
        data[f"during.{s}"] = sorted(f.during.get(s, ()))
    data.update(changes)
    return data


def changed_lines(before: str, after: str) -> set[int]:
    """1-based lines of `before` that the edit replaced or removed (insertions: the line
    they follow)."""
    out = set()
    sm = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, i1, i2, _j1, _j2 in sm.get_opcodes():
        if tag != "equal":
            out |= set(range(i1 + 1, i2 + 1)) or {i1}
    return out


def key_lines(text: str, gid: str, key: str) -> set[int]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{gid}:")
    k = next(i for i in range(start + 1, len(lines)) if lines[i].strip().startswith(f"{key}:"))
    end = k + 1
    while end < len(lines) and lines[end].startswith(" " * 6):   # the key's list items
        end += 1
    return set(range(k + 1, end + 1))


def test_saving_clients_and_a_name_changes_only_those_keys(real):
    app, c, policy = real
    before = policy.read_text(encoding="utf-8")
    r = post(c, "/groups/thcs", **form_data(
        app, "thcs", label_en="Lower secondary school (grades 6 to 9, ages 11 to 14)",
        clients="10.10.32.0/22\n10.10.40.0/24"))
    assert r.status_code == 302, r.get_data(as_text=True)
    after = policy.read_text(encoding="utf-8")
    assert after != before
    allowed = key_lines(before, "thcs", "clients") | key_lines(before, "thcs", "label_en")
    assert changed_lines(before, after) <= allowed, "".join(difflib.unified_diff(
        before.splitlines(True), after.splitlines(True)))
    # the kept item keeps its line and comment; the new one is in the list's own style
    assert "      - 10.10.32.0/22            # example: THCS classrooms\n" in after
    assert "      - 10.10.40.0/24\n" in after and "10.10.36.200" not in after
    # another group's hand-made list, comment line and all, is untouched
    assert "      # room 12 is shared with the library\n      - 10.10.24.0/24   #  phòng 12\n" \
        in after
    page = c.get("/groups/thcs").get_data(as_text=True)
    assert 'value="Lower secondary school (grades 6 to 9, ages 11 to 14)"' in page


def test_saving_an_unchanged_form_changes_nothing(real):
    app, c, policy = real
    before = policy.read_text(encoding="utf-8")
    for gid in ("thcs", "tieu_hoc", "thpt"):
        r = post(c, f"/groups/{gid}", **form_data(app, gid))
        assert r.status_code == 302
    assert policy.read_text(encoding="utf-8") == before


def test_every_bad_client_is_shown_beside_the_field(real):
    app, c, policy = real
    before = policy.read_text(encoding="utf-8")
    r = post(c, "/groups/thcs", **form_data(
        app, "thcs", clients="10.10.32.0/22\n10.0.0.300\n10.0.0.9-10.0.0.1\nzz:zz"))
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    errors = re.findall(r'<p class="field-error error-text" id="err-clients"[^>]*>([^<]*)</p>',
                        page)
    assert len(errors) == 3, errors
    assert any("bị ngược" in e for e in errors)          # Vietnamese, not the loader's English
    assert all("policy.yaml:" in e for e in errors)       # file:line kept
    assert policy.read_text(encoding="utf-8") == before
