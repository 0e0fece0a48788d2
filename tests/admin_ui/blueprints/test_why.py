"""'Why was this blocked?': the engine's own Decision and its text, for the chosen group."""

from __future__ import annotations

from admin_ui.blueprints.why import site_name


def test_site_name_accepts_names_and_urls():
    assert site_name("Bad.Example.") == "bad.example"
    assert site_name("https://bad.example/path?q=1") == "bad.example"
    assert site_name("bad.example/some/page") == "bad.example"
    assert site_name("http://user@bad.example:8080/") == "bad.example"
    assert site_name("https://bücher.example/") == "xn--bcher-kva.example"
    assert site_name("   ") == ""


def test_teacher_sees_the_decision_text_of_the_group(as_role, backend):
    c = as_role("teacher")
    page = c.get("/why?site=https://bad.example/x&group=thcs").get_data(as_text=True)
    decision = backend.decide("bad.example", "thcs")
    assert decision.blocked and decision.group == "thcs"
    assert decision.text("vi") in page
    assert "category" in page and "adult" in page


def test_same_site_other_group_gets_its_own_decision(as_role):
    c = as_role("teacher")
    page = c.get("/why?site=bad.example&group=staff").get_data(as_text=True)
    assert "bad.example: cho phép" in page


def test_english_text_in_english(as_role, backend):
    c = as_role("viewer")
    c.get("/lang/en")
    page = c.get("/why?site=bad.example&group=thcs").get_data(as_text=True)
    assert backend.decide("bad.example", "thcs").text("en") in page
    assert "Why was this blocked?" in page


def test_unknown_group_is_an_error_not_a_crash(as_role):
    page = as_role("viewer").get("/why?site=bad.example&group=nope").get_data(as_text=True)
    assert "nope" in page and 'role="alert"' in page


def test_xss_in_site_is_escaped(as_role):
    page = as_role("viewer").get(
        "/why?site=%3Cscript%3Ealert(1)%3C/script%3E&group=thcs").get_data(as_text=True)
    assert "<script>alert(1)" not in page
