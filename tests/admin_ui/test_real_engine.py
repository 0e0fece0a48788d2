"""The admin page on the real engine, loader and config (not the stand-ins): the shipped policy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from admin_ui import create_app
from tests.admin_ui.conftest import REPO, https_client, login, post

pytest.importorskip("filterd.build")


@pytest.fixture
def real(tmp_path: Path):
    """filterd.yaml + a copy of the shipped policies in tmp; the app built from the path."""
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    cfg = tmp_path / "filterd.yaml"
    cfg.write_text("# filterd.yaml for the admin tests (this comment must survive)\n"
                   f"school_id: test-school\ndata_dir: {tmp_path / 'data'}\n"
                   f"policy_dir: {tmp_path / 'policies'}\n"
                   "admin:\n  max_override_minutes: 30\n", encoding="utf-8")
    app = create_app(cfg, {"TESTING": True})
    from admin_ui.accounts import create_user
    from admin_ui.store import open_admin_db

    db = open_admin_db(tmp_path / "data")
    create_user(db, "admin1", "a long password", "admin")
    create_user(db, "co.lan", "a long password", "teacher", ("thcs",))
    db.conn.close()
    return app, cfg, tmp_path


def _client(app, name):
    c = https_client(app)
    assert login(c, name, "a long password").status_code == 302
    return c


def _check(cfg: Path, name: str, client: str, lang: str) -> str:
    run = subprocess.run([sys.executable, "-m", "filterd", "check", name, "--client", client,
                          "--config", str(cfg), "--lang", lang],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode in (0, 1), run.stderr
    return run.stdout.strip()


@pytest.mark.integration
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_why_shows_the_same_text_as_filterd_check(real, lang):
    app, cfg, _ = real
    c = _client(app, "co.lan")
    c.get(f"/lang/{lang}")
    backend = app.extensions["filterd"]
    ip, _mac = backend.client_for_group("thcs")
    # The text names the minute of the decision: ask `filterd check` before and after the
    # page, so a minute turning over between them cannot fail the comparison.
    before = _check(cfg, "pornhub.com", ip, lang)
    page = c.get("/why?site=https://pornhub.com/x&group=thcs").get_data(as_text=True)
    after = _check(cfg, "pornhub.com", ip, lang)
    assert before and "pornhub.com" in before
    from markupsafe import escape

    assert str(escape(before)) in page or str(escape(after)) in page


def test_client_for_group_really_is_in_the_group(real):
    app, _, _ = real
    backend = app.extensions["filterd"]
    eng = backend.engine()
    for grp in backend.groups():
        ip, mac = backend.client_for_group(grp.id)
        assert eng.group_for(ip, mac).id == grp.id


def test_move_category_with_the_real_loader(real):
    app, _, tmp = real
    c = _client(app, "admin1")
    backend = app.extensions["filterd"]
    before = backend.decide("minecraft.net", "thpt")
    form = c.get("/groups/thpt").get_data(as_text=True)
    assert 'id="always-games"' in form
    from admin_ui.policy_edit import group_form

    f = group_form(backend, "thpt")
    data = {"always": sorted(f.always | {"games"}), "allow": "\n".join(f.allow),
            "deny": "\n".join(f.deny), "clients": "\n".join(f.clients),
            "label_vi": f.label_vi, "label_en": f.label_en, "safe_search": f.safe_search,
            "youtube": f.youtube, "block_mode": f.block_mode, "reason": "games at break time"}
    for s in f.schedules:
        data[f"during.{s}"] = sorted(f.during.get(s, ()))
    resp = post(c, "/groups/thpt", **data)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    doc = yaml.safe_load((tmp / "policies" / "policy.yaml").read_text())
    assert "games" in doc["groups"]["thpt"]["block"]["always"]
    assert "# filterd school policy" in (tmp / "policies" / "policy.yaml").read_text()
    after = backend.decide("minecraft.net", "thpt")
    assert after.blocked and after.category == "games"
    assert before.reason != after.reason or not before.blocked


def test_invalid_edit_refused_with_the_real_loaders_words(real):
    app, _, tmp = real
    c = _client(app, "admin1")
    path = tmp / "policies" / "policy.yaml"
    before = path.read_text()
    resp = post(c, "/groups/khach", always=["adult"], clients="10.10.200.0/33",
                label_vi="Khách", label_en="Guests", reason="typo")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "dải CIDR sai" in page and str(path) in page and "groups.khach.clients" in page
    assert path.read_text() == before


def test_settings_saved_through_the_real_config_loader(real):
    app, cfg, _ = real
    c = _client(app, "admin1")
    resp = post(c, "/settings", school_id="thcs-ba-dinh", school_name="Trường <THCS> Ba Đình",
                timezone="Asia/Ho_Chi_Minh", office_url="", retention_days="60",
                max_override_minutes="45", reason="new school year")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    doc = yaml.safe_load(cfg.read_text())
    assert doc["school_id"] == "thcs-ba-dinh" and doc["events"]["retention_days"] == 60
    assert doc["admin"]["max_override_minutes"] == 45
    assert app.extensions["filterd"].max_override_minutes == 45
    assert "# filterd.yaml for the admin tests (this comment must survive)" in cfg.read_text()
    page = c.get("/settings").get_data(as_text=True)
    assert "Trường &lt;THCS&gt; Ba Đình" in page
    # a new time zone applies to the page's dates at once
    post(c, "/settings", school_id="thcs-ba-dinh", school_name="x", timezone="Europe/London",
         office_url="", retention_days="60", max_override_minutes="45", reason="tz")
    with app.test_request_context():
        from flask_babel import get_timezone

        assert str(get_timezone()) == "Europe/London"


def test_bad_settings_refused_with_file_line_key(real):
    app, cfg, _ = real
    c = _client(app, "admin1")
    before = cfg.read_text()
    resp = post(c, "/settings", school_id="thcs", school_name="x", timezone="Mars/Olympus",
                office_url="ftp://x", retention_days="abc", max_override_minutes="45",
                reason="try")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "unknown time zone" in page and str(cfg) in page
    assert cfg.read_text() == before


def test_override_with_the_real_engine_and_protected_list(real):
    app, _, tmp = real
    c = _client(app, "co.lan")
    backend = app.extensions["filterd"]
    assert backend.decide("pornhub.com", "thcs").blocked
    resp = post(c, "/overrides", site="pornhub.com", group="thcs", minutes="30", reason="test")
    assert resp.status_code == 302
    assert not backend.decide("pornhub.com", "thcs").blocked  # the real engine reads the file
    assert post(c, "/overrides", site="pornhub.com", group="thcs", minutes="31",
                reason="too long").status_code == 302
    assert len(backend.read_overrides()) == 1
    (tmp / "policies" / "protected.txt").write_text("csam-test.example\n")
    protected = "csam-test.example"
    assert backend.decide(protected, "thcs").reason == "protected"
    post(c, "/overrides", site=protected, group="thcs", minutes="10", reason="no")
    assert len(backend.read_overrides()) == 1
    assert backend.decide(protected, "thcs").blocked


def test_unchanged_lists_keep_their_comments(real):
    app, _, tmp = real
    c = _client(app, "admin1")
    backend = app.extensions["filterd"]
    from admin_ui.policy_edit import group_form

    f = group_form(backend, "giao_vien")
    data = {"always": sorted(f.always | {"gambling"}), "allow": "\n".join(f.allow),
            "deny": "\n".join(f.deny), "clients": "\n".join(f.clients),
            "label_vi": f.label_vi, "label_en": f.label_en, "safe_search": f.safe_search,
            "youtube": f.youtube, "block_mode": f.block_mode, "reason": "r"}
    assert post(c, "/groups/giao_vien", **data).status_code == 302
    text = (tmp / "policies" / "policy.yaml").read_text()
    assert "# example: the principal's laptop (one address)" in text
    assert "gambling" in text.split("giao_vien:")[1].split("khach:")[0]
    page = c.get("/groups/thcs").get_data(as_text=True)
    assert "Giờ học" in page and "Ban đêm" in page  # schedules by their names


def test_every_group_setting_reaches_the_real_engine(real):
    """Schedules, safe search, YouTube, block mode, allow/deny entries and clients (CIDR,
    range, MAC) edited on the page: the daemon's own engine then decides by them."""
    from datetime import UTC, datetime

    from admin_ui.policy_edit import group_form
    from filterd.policy.decision import Query

    app, _, tmp = real
    c = _client(app, "admin1")
    backend = app.extensions["filterd"]
    f = group_form(backend, "khach")
    data = {"always": sorted(f.always), "label_vi": f.label_vi, "label_en": f.label_en,
            "allow": "\n".join([*f.allow, "=lesson.example.org"]),
            "deny": "\n".join([*f.deny, "deny-me.example"]),
            "clients": "\n".join([*f.clients, "10.99.0.10-10.99.0.20", "192.0.2.0/28",
                                  "02:00:5e:00:00:42"]),
            "safe_search": "strict", "youtube": "strict", "block_mode": "nxdomain",
            "reason": "guests: stricter"}
    for s in f.schedules:
        data[f"during.{s}"] = sorted(f.during.get(s, ()))
    data["during.gio_hoc"] = sorted({*data.get("during.gio_hoc", ()), "games"})
    resp = post(c, "/groups/khach", **data)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert (tmp / "policies" / "policy.yaml.prev").exists()   # the previous version is kept

    eng = backend.engine()
    grp = eng.groups["khach"]
    assert "games" in grp.block_during["gio_hoc"]
    assert str(grp.youtube) == "strict" and str(grp.block_mode) == "nxdomain"
    assert eng.group_for("10.99.0.15").id == "khach"
    assert eng.group_for("192.0.2.5").id == "khach"
    assert eng.group_for("198.51.100.7", "02:00:5e:00:00:42").id == "khach"
    assert backend.decide("deny-me.example", "khach").reason == "group_deny"
    assert backend.decide("www.deny-me.example", "khach").blocked
    yt = backend.decide("www.youtube.com", "khach")
    assert yt.reason == "youtube" and "strict" in yt.rule
    assert backend.decide("www.google.com", "khach").reason == "safe_search"
    lesson = eng.decide(Query(name="lesson.example.org", client_ip="10.99.0.15",
                              at=datetime.now(UTC), path="check"))
    assert lesson.reason == "group_allow"
