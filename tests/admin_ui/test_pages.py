"""Every route and role, CSRF on every form, and every page in both languages: labelled for
screen readers, usable on a phone, no asset from elsewhere, numbers and dates in the locale."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po

from admin_ui.i18n import TRANSLATIONS
from tests.admin_ui.conftest import post
from tests.admin_ui.test_app import GET_MATRIX, POST_ADMIN_ONLY

TEMPLATES = Path(__file__).resolve().parents[2] / "admin_ui" / "templates"

# POST routes a teacher may use (overrides and review requests of their groups, their
# password, signing out)
POST_TEACHER = ("/overrides", "/overrides/x1/revoke", "/reviews/1/decline", "/account/password",
                "/logout", "/alerts/1/handle")
PUBLIC = ("/setup", "/login", "/lang/vi", "/static/app.css")
# One alert's page needs that alert: its roles are tested in blueprints/test_alerts.py.
TESTED_ELSEWHERE = ("/alerts/1",)


def _rule_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"gid": "thcs", "fname": "groups.yaml",
                                                  "user_id": "1", "review_id": "1",
                                                  "oid": "x1", "code": "vi",
                                                  "filename": "app.css", "alert_id": "1",
                                                  "rid": "1"}[m.group(1)], rule)


def test_the_role_tests_cover_every_route(app):
    """A new page cannot slip past the role matrix: each rule must be listed in it."""
    listed_get = set(GET_MATRIX) | set(PUBLIC) | set(TESTED_ELSEWHERE)
    listed_post = set(POST_ADMIN_ONLY) | set(POST_TEACHER) | {"/setup", "/login"}
    missing = []
    for rule in app.url_map.iter_rules():
        path = _rule_path(rule.rule)
        if "GET" in rule.methods and path not in listed_get:
            missing.append(("GET", path))
        if "POST" in rule.methods and path not in listed_post:
            missing.append(("POST", path))
    assert missing == []


@pytest.fixture
def sample(shared_db, backend):
    """An override, a review request and events so every page has rows to render."""
    now = time.time()
    shared_db["events"].insert_all([
        {"ts": now - 60 * i, "client_ip": "127.0.0.5", "client_mac": None, "group_id": "thcs",
         "name": "bad.example", "qtype": "A", "action": "block", "reason": "category",
         "category": "adult", "rule": "", "source": "", "list_version": "1", "path": "dns"}
        for i in range(3)])
    shared_db["reviews"].insert({"id": 1, "created_at": now, "name": "bad.example",
                                 "group_id": "thcs", "category": "adult", "reason": "category",
                                 "message": "for biology", "client_ip": "127.0.0.5",
                                 "status": "open"})
    overrides = backend.data_dir / "overrides.json"
    overrides.write_text(json.dumps({"version": 1, "overrides": [{
        "id": "x1", "group": "thcs", "domain": "bad.example", "created_by": "teacher1",
        "expires_at": datetime.fromtimestamp(now + 1800, UTC).isoformat(timespec="seconds"),
        "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "reason": "lesson"}]}), encoding="utf-8")
    return shared_db


def _state(backend, policy_file, db) -> tuple:
    return (policy_file.read_bytes(), (backend.data_dir / "overrides.json").read_bytes(),
            db.execute("SELECT COUNT(*) FROM users").fetchone()[0],
            db.execute("SELECT COUNT(*) FROM reviews WHERE status = 'open'").fetchone()[0])


def test_every_form_without_its_csrf_token_is_refused(as_role, sample, backend, policy_file):
    c = as_role("admin")
    before = _state(backend, policy_file, sample)
    audit_rows = c.get("/audit.csv").get_data(as_text=True).count("\n")
    for url in (*POST_ADMIN_ONLY, *POST_TEACHER):
        for token in (None, "forged-token"):
            data = {"text": "groups: {}\n", "reason": "r", "site": "x.example", "group": "thcs",
                    "minutes": "5", "name": "mallory", "password": "x" * 12, "role": "admin",
                    "note": "n", "school_name": "x"}
            if token:
                data["csrf_token"] = token
            resp = c.post(url, data=data)
            assert resp.status_code == 400, (url, token)
    assert _state(backend, policy_file, sample) == before
    assert c.get("/").status_code == 200   # still signed in: /logout without a token was refused
    assert c.get("/audit.csv").get_data(as_text=True).count("\n") == audit_rows


def test_teacher_may_post_only_their_own_forms(as_role, sample, policy_file):
    c = as_role("teacher")
    for url in POST_ADMIN_ONLY:
        assert post(c, url, text="groups: {}\n", reason="x", note="n").status_code == 403, url
    resp = post(c, "/overrides", site="other.example", group="thcs", minutes="5", reason="lesson")
    assert resp.status_code == 302
    resp = post(c, "/overrides/x1/revoke", reason="done")   # made by teacher1, this account
    assert resp.status_code == 302
    assert post(c, "/reviews/1/decline", reason="not for class").status_code == 302


class _PageAudit(HTMLParser):
    """Collects what a screen reader and a phone need from one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.label_for: set[str] = set()
        self.controls: list[dict[str, str]] = []
        self.in_label = 0
        self.h1 = 0
        self.buttons: list[str] = []
        self._button: list[str] | None = None
        self.th_without_scope = 0
        self.external: list[str] = []
        self.scripts = 0
        self.html_lang = ""
        self.viewport = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.html_lang = a.get("lang", "")
        elif tag == "meta" and a.get("name") == "viewport":
            self.viewport = "width=device-width" in a.get("content", "")
        elif tag == "label":
            self.in_label += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        elif tag in ("input", "select", "textarea"):
            if a.get("type") not in ("hidden", "submit", "button"):
                self.controls.append({**a, "_wrapped": "1" if self.in_label else ""})
        elif tag == "h1":
            self.h1 += 1
        elif tag == "button":
            self._button = [a.get("aria-label", "")]
        elif tag == "th" and "scope" not in a:
            self.th_without_scope += 1
        elif tag == "script":
            self.scripts += 1
        for key in ("src", "href", "action"):
            if re.match(r"(https?:)?//", a.get(key, "")) and tag in ("script", "link", "img",
                                                                     "form", "iframe"):
                self.external.append(a[key])

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1
        elif tag == "button" and self._button is not None:
            self.buttons.append("".join(self._button).strip())
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)


def _vi_english_leftovers(page: str) -> list[str]:
    """English msgids of the catalog that appear in a Vietnamese page (said without _())."""
    with (TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        cat = read_po(fh, locale="vi")
    text = re.sub(r"<[^>]+>", " ", page)
    return [m.id for m in cat if m.id and isinstance(m.id, str) and len(m.id) >= 12
            and "%(" not in m.id and m.string != m.id and m.id in text]


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_page_is_labelled_phone_ready_and_local(as_role, sample, lang):
    seen = 0
    for role in ("admin", "teacher", "viewer"):
        c = as_role(role)
        c.get(f"/lang/{lang}")
        for url, allowed in GET_MATRIX.items():
            if role not in allowed or url.endswith(".csv"):
                continue
            resp = c.get(url)
            assert resp.status_code == 200, (role, url)
            page = resp.get_data(as_text=True)
            p = _PageAudit()
            p.feed(page)
            where = (role, lang, url)
            assert p.html_lang == lang and p.viewport, where
            assert p.h1 == 1, where
            unlabelled = [ctl.get("name") for ctl in p.controls
                          if not ctl["_wrapped"] and not ctl.get("aria-label")
                          and ctl.get("id") not in p.label_for]
            assert unlabelled == [], where
            assert all(p.buttons), (where, p.buttons)
            assert p.th_without_scope == 0, where
            assert p.external == [] and p.scripts == 0, where
            if lang == "vi":
                assert _vi_english_leftovers(page) == [], where
            seen += 1
        post(c, "/logout")
    assert seen >= 25


def test_templates_say_nothing_outside_the_catalog():
    """Text written straight into a template would never be translated."""
    allowed = {"filterd", "Tiếng Việt", "English"}   # the brand and each language's own name
    found = []
    for path in sorted(TEMPLATES.glob("*.html")):
        text = re.sub(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", " ", path.read_text(), flags=re.S)
        for attr in re.findall(r'(?:title|aria-label|alt)="([^"]*)"', text):
            if re.search(r"[^\W\d_]{2,}", attr):
                found.append((path.name, attr))
        for chunk in re.sub(r"<[^>]*>", "\n", text).split("\n"):
            chunk = chunk.strip(" \t·:()|/,.-–—…")
            if re.search(r"[^\W\d_]{2,}", chunk) and chunk not in allowed:
                found.append((path.name, chunk))
    assert found == []


def test_numbers_and_dates_follow_the_language(as_role, shared_db):
    now = datetime.now(UTC)
    shared_db["counts"].insert({"hour": now.strftime("%Y-%m-%dT%H"), "group_id": "thcs",
                                "category": "adult", "action": "block", "path": "dns",
                                "n": 12345})
    ts = datetime(2026, 3, 7, 2, 5, tzinfo=UTC).timestamp()   # 09:05 in Hà Nội
    shared_db["events"].insert({"ts": ts, "group_id": "thcs", "name": "bad.example",
                                "action": "block", "path": "dns", "reason": "category"})
    today = now.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    c = as_role("admin")
    vi = c.get("/").get_data(as_text=True)
    assert '<span class="big">12.345</span>' in vi
    assert f">{today.day}/{today.month}</text>" in vi        # day before month
    assert "07/03/2026 09:05" in c.get("/events").get_data(as_text=True)   # one vi format
    c.get("/lang/en")
    en = c.get("/").get_data(as_text=True)
    assert '<span class="big">12,345</span>' in en
    assert f">{today.month}/{today.day}</text>" in en
    assert "7 Mar 2026, 09:05" in c.get("/events").get_data(as_text=True)
