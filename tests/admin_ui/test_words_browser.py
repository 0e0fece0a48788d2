"""Every admin page, the why page and the block page in Chromium, read as people read them.

One `filterd run` and one `filterd admin serve` (the e2e stack), one browser. As admin
and as teacher, in Vietnamese and English, at 1280 and 390 px: no page scrolls
sideways, and no visible text is an internal id (every category, group, reason,
action and audit code is checked). Screenshots: tests/artifacts/words/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.admin_ui import test_e2e_browser as e2e

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import sync_playwright

from filterd.policy.catalog import load_catalog
from filterd.policy.decision import Action, Reason
from filterd.words.terms import AUDIT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
stack = e2e.stack    # the same daemon + admin page + fake upstream fixture
REPO = Path(__file__).resolve().parents[2]
PASSWORD = e2e.PASSWORD
GROUP = "thcs"
ADMIN_PAGES = ("/", "/groups", f"/groups/{GROUP}", f"/why?site={e2e.NAME}&group={GROUP}",
               "/reviews", "/reviews?status=approved", "/overrides",
               f"/overrides?site=www.facebook.com&group={GROUP}", "/events", "/lists",
               "/settings", "/users", "/audit", "/account/password", "/alerts")
TEACHER_PAGES = ("/", f"/why?site={e2e.NAME}&group={GROUP}", "/reviews", "/overrides",
                 f"/overrides?site=www.facebook.com&group={GROUP}", "/events",
                 "/account/password")
# Visible text of the page, cut where a label ends and a value begins ("Nhóm: thcs" ->
# "Nhóm", "thcs"); editors (the raw YAML), logs and diffs show files as they are.
READ_TEXT = """() => {
  const skip = new Set(['SCRIPT', 'STYLE', 'TEXTAREA', 'PRE', 'OPTION', 'SELECT']);
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest('textarea,pre,select,script,style,[hidden]')) continue;
    if (skip.has(el.tagName) || !el.checkVisibility()) continue;
    for (const part of n.textContent.split(/[\\n·,:;()\\[\\]«»“”"]+|\\s\\/\\s|\\s-\\s/)) {
      const t = part.trim();
      if (t) out.push([t, n.textContent]);
    }
  }
  return {tokens: out, scroll: document.documentElement.scrollWidth,
          width: window.innerWidth};
}"""


def internal_ids(policy_dir: Path) -> dict[str, tuple[str, ...]]:
    """Every id -> the words that may contain it (a label such as "… (torrent)")."""
    from filterd.policy.loader import load_policy

    catalog = load_catalog(REPO / "blocklists" / "categories.yaml")
    groups = load_policy(policy_dir, catalog).groups
    out: dict[str, tuple[str, ...]] = {c: (catalog[c].vi, catalog[c].en) for c in catalog}
    out.update({g: (groups[g].label_vi, groups[g].label_en) for g in groups})
    for code in ({r.value for r in Reason} | {a.value for a in Action} | set(AUDIT)):
        out.setdefault(code, ())
    return out


def add_account(data_dir: Path, name: str, role: str, groups: tuple[str, ...] = ()) -> None:
    from admin_ui.accounts import create_user
    from admin_ui.store import open_admin_db

    db = open_admin_db(data_dir)
    create_user(db, name, PASSWORD, role, groups)
    db.conn.close()


def student_asks_for_review(blockpage: str) -> None:
    """A student of the default group meets the block page and asks for a review."""
    curl = ["curl", "-sS", "--max-time", "15", "-H", f"Host: {e2e.NAME}"]
    shown = subprocess.run([*curl, f"{blockpage}/"], capture_output=True, text=True,
                           timeout=30, check=True).stdout
    token = re.search(r'name="csrf" value="([^"]+)"', shown)
    assert token, shown
    subprocess.run([*curl, "-o", "/dev/null", "--data-urlencode", f"name={e2e.NAME}",
                    "--data-urlencode", f"csrf={token.group(1)}", "--data-urlencode",
                    f"url=http://{e2e.NAME}/", "--data-urlencode", "message=cần cho bài học",
                    f"{blockpage}/_filterd/review"], capture_output=True, timeout=30, check=True)


def test_every_page_in_words_and_on_a_phone(stack, artifacts_dir):
    shots = artifacts_dir / "words"
    shots.mkdir(parents=True, exist_ok=True)
    url, tmp = stack["url"], stack["tmp"]
    data = tmp / "data"
    ids = internal_ids(tmp / "policies")
    add_account(data, "quan.tri", "admin")
    add_account(data, "co.lan", "teacher", (GROUP,))
    e2e.ask(stack["dns_port"])                       # an event in the log
    student_asks_for_review(stack["blockpage"])      # a review request
    bp_port = stack["blockpage"].rsplit(":", 1)[1]
    problems: list[str] = []

    def check(page, name: str) -> None:
        seen = page.evaluate(READ_TEXT)
        if seen["scroll"] > seen["width"] + 1:
            problems.append(f"{name}: {seen['scroll']} px wide in {seen['width']} px")
        codes = sorted({t for t, text in seen["tokens"]
                        if t in ids and not any(w and w in text for w in ids[t])})
        if codes:
            problems.append(f"{name}: internal ids shown: {codes}")
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(e2e.CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--host-resolver-rules=MAP {e2e.NAME} 127.0.0.1"])
        try:
            for user, pages in (("quan.tri", ADMIN_PAGES), ("co.lan", TEACHER_PAGES)):
                ctx = browser.new_context(viewport={"width": 1280, "height": 900})
                page = ctx.new_page()
                page.goto(url + "/login")
                page.fill("#name", user)
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(url + "/")
                if user == "quan.tri":   # an override made through the page: audit, list
                    page.goto(f"{url}/overrides?site=www.facebook.com&group={GROUP}")
                    page.fill("#step2 #minutes", "5")
                    page.fill("#step2 #reason", "Bài giảng về mạng xã hội")
                    page.click("#step2 button[type=submit]")
                for lang in ("vi", "en"):
                    page.goto(f"{url}/lang/{lang}?next=/")
                    for width, height in ((1280, 900), (390, 844)):
                        page.set_viewport_size({"width": width, "height": height})
                        for path in pages:
                            resp = page.goto(url + path)
                            assert resp is not None and resp.status == 200, (user, path)
                            slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
                            check(page, f"{user}-{lang}-{width}-{slug}")
                ctx.close()
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            for lang in ("vi", "en"):
                for width, height in ((1280, 900), (390, 844)):
                    page.set_viewport_size({"width": width, "height": height})
                    page.goto(f"http://{e2e.NAME}:{bp_port}/?lang={lang}")
                    assert "bet365.com" in page.content()
                    check(page, f"blockpage-{lang}-{width}")
            ctx.close()
        finally:
            browser.close()
    assert problems == []
