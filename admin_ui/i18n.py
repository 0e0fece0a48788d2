"""Vietnamese by default, English on request; catalogs compiled from the .po files."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import session

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def select_locale() -> str:
    """Vietnamese unless this session chose English (the browser's language is not asked:
    school machines often run an English browser for Vietnamese staff)."""
    lang = session.get("lang")
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Compile each messages.po to messages.mo when the .mo is missing or older; return written."""
    written = []
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        try:
            with mo.open("wb") as fh:
                write_mo(fh, catalog)
        except PermissionError:
            continue  # installed read-only: the shipped .mo is used
        written.append(mo)
    return written
