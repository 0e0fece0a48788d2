"""The block page renderer, and the page in a real headless Chromium (both languages)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from filterd.http.blockpage import (
    BlockPageRenderer,
    CsrfSigner,
    PageContext,
    choose_lang,
    reference_id,
)
from filterd.http.categories import load_categories
from filterd.policy.decision import Action, Decision, Reason, RuleSource

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def decision(**kw) -> Decision:
    base = dict(
        action=Action.BLOCK,
        reason=Reason.CATEGORY,
        name="casino.test",
        group="thcs",
        at=datetime(2026, 11, 25, 3, 4, tzinfo=UTC),
        rule="casino.test",
        source=RuleSource("list", "ut1-gambling", "v1"),
        category="gambling",
        group_label="Trung học cơ sở",
    )
    base.update(kw)
    return Decision(**base)


@pytest.fixture(scope="module")
def renderer() -> BlockPageRenderer:
    return BlockPageRenderer(load_categories(), school_name="THCS Nguyễn Du")


@pytest.mark.parametrize(
    "q,accept,want",
    [
        (None, None, "vi"),
        ("en", "vi", "en"),
        ("vi", "en", "vi"),
        ("xx", "en-GB,en;q=0.8", "en"),
        (None, "fr, en;q=0.5, vi;q=0.9", "vi"),
        (None, "de", "vi"),
        (None, "en;q=bad", "en"),
    ],
)
def test_choose_lang(q, accept, want):
    assert choose_lang(q, accept) == want


def test_vietnamese_page_for_a_student(renderer):
    html = renderer.render(decision(), PageContext(client_ip="10.0.0.5", csrf_token="t" * 32))
    assert '<html lang="vi">' in html
    assert "Cờ bạc, cá cược" in html and "Trung học cơ sở" in html
    assert "25/11/2026 10:04" in html  # school's local time (UTC+7), the one vi format
    assert reference_id(decision(), "10.0.0.5") in html
    assert "111" in html and "không phải lỗi của em" in html  # gambling is sensitive
    assert "ut1-gambling" not in html and "Dành cho thầy cô" not in html
    assert (
        "http://" not in html.replace('href="/', "") or "https://" not in html
    )  # no external refs
    assert "<script" not in html and "src=" not in html


def test_english_page_for_staff(renderer):
    html = renderer.render(decision(), PageContext(client_ip="10.0.0.5", lang="en", staff=True))
    assert '<html lang="en">' in html and "Gambling and betting" in html
    assert "the list “Gambling and betting” (UT1, University of Toulouse, version v1)" in html
    assert "Kind of content always blocked" in html and "ut1-gambling" not in html
    assert 'action="/_filterd/review' not in html  # no token, no form


def test_non_sensitive_category_has_no_kind_box(renderer):
    html = renderer.render(decision(category="games"), PageContext(client_ip="10.0.0.5"))
    assert "không phải lỗi của em" not in html and "111" in html  # hotline always in the footer


def test_hostile_values_escaped(renderer):
    d = decision(name="<img src=x onerror=alert(1)>", rule="<b>rule</b>", category=None)
    html = renderer.render(
        d,
        PageContext(
            client_ip="1.2.3.4",
            staff=True,
            url='"><script>x</script>',
            path_and_query='/"><script>',
        ),
    )
    assert "<img src=x" not in html and "<script>" not in html and "<b>rule" not in html


def test_reference_id_stable_and_short():
    a = reference_id(decision(), "10.0.0.5")
    assert a == reference_id(decision(), "10.0.0.5") != reference_id(decision(), "10.0.0.6")
    assert len(a) == 8


def test_csrf_tokens_bound_to_client_name_and_time():
    s = CsrfSigner(b"k" * 32)
    t = s.token("10.0.0.1", "a.test", 7200.0)
    assert s.check(t, "10.0.0.1", "a.test", 7200.0 + 3599)
    assert s.check(t, "10.0.0.1", "a.test", 7200.0 + 3600 + 10)  # previous hour still valid
    assert not s.check(t, "10.0.0.1", "a.test", 7200.0 + 7300)
    assert not s.check(t, "10.0.0.2", "a.test", 7200.0)
    assert not s.check(t, "10.0.0.1", "b.test", 7200.0)


# WCAG 2 contrast of every visible text element against its painted background.
CONTRAST_JS = """() => {
  const lum = (c) => {
    const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      const alpha = c.startsWith('rgba') ? Number(c.match(/[\\d.]+/g)[3]) : 1;
      if (alpha > 0) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const out = [];
  for (const el of document.querySelectorAll('h1,h2,p,dt,dd,code,label,button,a,time,footer')) {
    if (!el.innerText.trim() || !el.offsetParent) continue;
    const a = lum(getComputedStyle(el).color), b = lum(bg(el));
    out.push([el.tagName, el.innerText.slice(0, 30),
              (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
  }
  return out;
}"""


def assert_accessible(page) -> None:
    """lang attribute, every form control labelled, text contrast at least WCAG AA (4.5:1)."""
    assert page.locator("html").get_attribute("lang") in ("vi", "en")
    for control in page.locator("textarea, input:not([type=hidden]), select").all():
        cid = control.get_attribute("id")
        assert cid and page.locator(f"label[for={cid}]").count() == 1, cid
    ratios = page.evaluate(CONTRAST_JS)
    assert ratios, "no text found"
    low = [r for r in ratios if r[2] < 4.5]
    assert not low, low


@pytest.mark.integration
def test_block_page_in_chromium(svc, artifacts_dir):
    playwright = pytest.importorskip("playwright.sync_api")
    svc.engine.only = frozenset()  # the browser's own background requests stay here
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, proxy={"server": svc.proxy_url}
        )
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="vi-VN")
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            resp = page.goto("http://blocked.test/video/123")
            assert resp.status == 403
            assert page.locator("html").get_attribute("lang") == "vi"
            assert page.get_by_role("heading", level=1).inner_text() == "Trang này đã bị chặn"
            assert "Nội dung người lớn" in page.content()
            # Readable on a phone: nothing wider than the viewport.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert_accessible(page)
            page.screenshot(path=str(artifacts_dir / "blockpage-vi.png"), full_page=True)

            page.get_by_role("link", name="English").click()
            page.wait_for_load_state()
            assert page.locator("html").get_attribute("lang") == "en"
            assert page.get_by_role("heading", level=1).inner_text() == "This page is blocked"
            assert_accessible(page)
            page.screenshot(path=str(artifacts_dir / "blockpage-en.png"), full_page=True)

            # The review form: labelled, and hostile text is stored as text, capped.
            box = page.get_by_label("Message (optional, at most 500 characters)")
            box.fill("<script>alert(1)</script> " + "a" * 600)
            page.get_by_role("button", name="Send request").click()
            page.wait_for_load_state()
            assert "Thank you" in page.content()
            page.screenshot(path=str(artifacts_dir / "blockpage-review-en.png"), full_page=True)
            (row,) = svc.service.reviews.open_reviews()
            assert row["message"].startswith("<script>alert(1)</script>")
            assert len(row["message"]) <= 500
            assert row["url"] == "http://blocked.test/video/123"
            # Works offline: the browser never asked for anything from another origin.
            assert requested and all(u.startswith("http://blocked.test/") for u in requested)
        finally:
            browser.close()
