"""Groups editor: validated by the loader before anything is written, atomic, reloads the daemon."""

from __future__ import annotations

import yaml

from tests.admin_ui.conftest import post


def _doc(policy_file):
    return yaml.safe_load(policy_file.read_text())


def test_groups_page_lists_groups_and_files(as_role):
    page = as_role("viewer").get("/groups").get_data(as_text=True)
    assert "/groups/thcs" in page and "groups.yaml" in page
    assert "/groups/base" in page  # abstract groups are templates other tiers extend
    why = as_role("viewer").get("/why").get_data(as_text=True)
    assert 'value="thcs"' in why and 'value="base"' not in why  # no student is in a template


def test_move_category_into_blocked_set_writes_validates_and_reloads(as_role, policy_file,
                                                                     fake_daemon):
    c = as_role("admin")
    resp = post(c, "/groups/thcs", always=["adult", "gambling"], allow="school.example",
                clients="127.0.0.0/29", label_vi="THCS", label_en="Lower secondary",
                reason="gambling ads in class")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    body = _doc(policy_file)["groups"]["thcs"]
    assert body["block"]["always"] == ["gambling"]        # adult still comes from base
    assert "unblock" not in body
    assert "# Test policy (comments must survive edits)" in policy_file.read_text()
    prev = policy_file.with_name("groups.yaml.prev")
    assert prev.exists() and "gambling" not in prev.read_text()
    assert fake_daemon.hups() == 1
    page = c.get("/groups/thcs").get_data(as_text=True)
    assert "reloaded" in page or "nạp lại" in page
    audit = c.get("/audit").get_data(as_text=True)
    assert "gambling ads in class" in audit and "+        - gambling" in audit


def test_unticking_an_inherited_category_unblocks_it(as_role, policy_file):
    c = as_role("admin")
    resp = post(c, "/groups/thcs", allow="school.example", clients="127.0.0.0/29",
                label_vi="THCS", label_en="Lower secondary", reason="older students")
    assert resp.status_code == 302
    body = _doc(policy_file)["groups"]["thcs"]
    assert body["unblock"] == ["adult"] and "block" not in body


def test_invalid_edit_is_refused_with_the_loaders_message_and_nothing_written(as_role,
                                                                              policy_file,
                                                                              fake_daemon):
    c = as_role("admin")
    before = policy_file.read_text()
    resp = post(c, "/groups/thcs", always=["adult"], clients="not-an-address",
                label_vi="THCS", label_en="Lower secondary", reason="typo")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "not an IP, CIDR, range or MAC address" in page and "groups.thcs.clients" in page
    assert str(policy_file) in page  # the real file is named, not the temp copy
    assert policy_file.read_text() == before
    assert not policy_file.with_name("groups.yaml.prev").exists()
    assert fake_daemon.hups() == 0


def test_raw_edit_refused_with_file_line_key(as_role, policy_file):
    c = as_role("admin")
    before = policy_file.read_text()
    text = before.replace("    extends: base\n", "    extends: base\n    colour: red\n")
    resp = post(c, "/policies/groups.yaml", text=text, reason="try")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "groups.thcs.colour" in page and "unknown key" in page
    assert f"{policy_file}:" in page
    assert policy_file.read_text() == before


def test_raw_edit_valid_is_saved(as_role, policy_file):
    c = as_role("admin")
    text = policy_file.read_text().replace("      - school.example\n",
                                           "      - school.example\n      - =wiki.example\n")
    resp = post(c, "/policies/groups.yaml", text=text, reason="wiki for projects")
    assert resp.status_code == 302
    assert "=wiki.example" in policy_file.read_text()


def test_edit_needs_a_reason(as_role, policy_file):
    c = as_role("admin")
    before = policy_file.read_text()
    resp = post(c, "/groups/thcs", always=["adult", "gambling"], reason="")
    assert resp.status_code == 400
    assert policy_file.read_text() == before


def test_reload_failure_is_shown_when_the_daemon_is_not_running(as_role, policy_file):
    c = as_role("admin")
    resp = post(c, "/groups/thcs", always=["adult", "gambling"], allow="school.example",
                clients="127.0.0.0/29", label_vi="THCS", label_en="Lower secondary",
                reason="r")
    assert resp.status_code == 302
    page = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert "did not reload" in page or "không nạp lại" in page


def test_policy_file_names_cannot_escape_the_policy_dir(as_role):
    c = as_role("admin")
    assert c.get("/policies/..%2Ffilterd.yaml").status_code == 404
    assert c.get("/policies/.hidden.yaml").status_code == 404
    assert post(c, "/policies/x.txt", text="a", reason="r").status_code == 404


def test_xss_in_group_label_is_escaped(as_role, policy_file):
    c = as_role("admin")
    resp = post(c, "/groups/thcs", always=["adult"], allow="school.example",
                clients="127.0.0.0/29", label_vi="<script>alert(1)</script>",
                label_en="Lower secondary", reason="r")
    assert resp.status_code == 302
    page = c.get("/groups").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
