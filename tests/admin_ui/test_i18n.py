"""Every string of the admin page is translated into Vietnamese and English, and compiled."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from admin_ui.i18n import TRANSLATIONS

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "N_": None, "lazy_gettext": None}


def _source_messages() -> set[str]:
    found = set()
    method_map = [("admin_ui/**.py", "python"), ("admin_ui/templates/**.html", "jinja2")]
    for _file, _line, msg, _comments, _ctx in extract_from_dir(
            str(ROOT), method_map, keywords=KEYWORDS):
        if isinstance(msg, tuple):
            msg = msg[0]
        if msg:
            found.add(msg)
    return found


def test_every_message_is_translated_in_both_languages():
    wanted = _source_messages()
    assert len(wanted) > 150
    for lang in ("vi", "en"):
        po = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
        with po.open("rb") as fh:
            cat = read_po(fh, locale=lang)
        have = {m.id: m.string for m in cat if m.id}
        missing = sorted(m for m in wanted if not have.get(m))
        assert missing == [], f"{lang}: untranslated (run scripts/admin-translations): {missing}"
        fuzzy = [m.id for m in cat if m.id and m.fuzzy]
        assert fuzzy == [], f"{lang}: fuzzy entries {fuzzy}"


def test_compiled_catalogs_match_the_po_files():
    for lang in ("vi", "en"):
        d = TRANSLATIONS / lang / "LC_MESSAGES"
        with (d / "messages.po").open("rb") as fh:
            po = {m.id: m.string for m in read_po(fh, locale=lang) if m.id}
        with (d / "messages.mo").open("rb") as fh:
            mo = {m.id: m.string for m in read_mo(io.BytesIO(fh.read())) if m.id}
        assert mo == po, f"{lang}: messages.mo is stale; run scripts/admin-translations"


def test_placeholders_are_kept_in_vietnamese():
    import re

    with (TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        cat = read_po(fh, locale="vi")
    for m in cat:
        if m.id:
            assert sorted(re.findall(r"%\(\w+\)s", m.id)) == \
                sorted(re.findall(r"%\(\w+\)s", m.string)), m.id


def test_vietnamese_is_the_default_and_english_on_request(as_role):
    c = as_role("viewer")
    page = c.get("/").get_data(as_text=True)
    assert '<html lang="vi">' in page and "Tổng quan" in page
    c.get("/lang/en")
    page = c.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page and "Dashboard" in page and "Tổng quan" not in page


def _copy_catalogs(tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, dest)
    return dest


def test_a_clone_without_compiled_catalogs_gets_them_when_the_app_starts(tmp_path):
    from admin_ui.i18n import compile_catalogs

    tr = _copy_catalogs(tmp_path)
    for mo in tr.glob("*/LC_MESSAGES/messages.mo"):
        mo.unlink()
    assert len(compile_catalogs(tr)) == 2
    with (tr / "vi" / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
        mo = {m.id: m.string for m in read_mo(fh) if m.id}
    assert mo["Dashboard"] == "Tổng quan"


def test_right_catalogs_are_left_alone_whatever_their_mtime(tmp_path):
    """A fresh clone has arbitrary mtimes; a correct committed .mo must not be rewritten."""
    import os

    from admin_ui.i18n import compile_catalogs

    tr = _copy_catalogs(tmp_path)
    for po in tr.glob("*/LC_MESSAGES/messages.po"):
        os.utime(po.with_suffix(".mo"), (1_000_000, 1_000_000))   # older than the .po
    before = {p: p.read_bytes() for p in tr.glob("*/LC_MESSAGES/messages.mo")}
    assert compile_catalogs(tr) == []
    assert {p: p.read_bytes() for p in before} == before


def test_a_stale_catalog_is_compiled_again(tmp_path):
    from admin_ui.i18n import compile_catalogs

    tr = _copy_catalogs(tmp_path)
    po = tr / "vi" / "LC_MESSAGES" / "messages.po"
    po.write_text(po.read_text(encoding="utf-8").replace('msgstr "Tổng quan"',
                                                         'msgstr "Bảng tổng quan"'),
                  encoding="utf-8")
    assert compile_catalogs(tr) == [po.with_suffix(".mo")]
    with po.with_suffix(".mo").open("rb") as fh:
        assert {m.id: m.string for m in read_mo(fh)}["Dashboard"] == "Bảng tổng quan"


def test_a_built_package_carries_templates_assets_and_catalogs(tmp_path):
    """The admin page's data directories are not Python packages: setup.cfg must name them."""
    import subprocess
    import sys

    (tmp_path / "egg").mkdir()
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()",
                    "egg_info", "-e", str(tmp_path / "egg"), "build_py", "-d",
                    str(tmp_path / "build")], cwd=ROOT, check=True, capture_output=True,
                   timeout=120)
    built = tmp_path / "build" / "admin_ui"
    for rel in ("templates/base.html", "static/app.css",
                "translations/vi/LC_MESSAGES/messages.mo",
                "translations/en/LC_MESSAGES/messages.mo"):
        assert (built / rel).is_file(), rel


def test_vietnamese_is_not_a_copy_of_the_english():
    """An English sentence pasted as its own "translation" passes the emptiness check."""
    import re

    with (TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        cat = read_po(fh, locale="vi")
    copies = [m.id for m in cat if m.id and m.string == m.id
              and len(re.findall(r"[A-Za-z]{2,}", m.id)) >= 2]
    assert copies == []
