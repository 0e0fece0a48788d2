"""Vietnamese by default, English on request; catalogs compiled from the .po files."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from babel.messages.mofile import read_mo, write_mo
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


def _messages(catalog: Any) -> dict[Any, Any]:
    return {m.id: m.string for m in catalog if m.id and not m.fuzzy}


def compile_catalogs(directory: Path = TRANSLATIONS) -> list[Path]:
    """Compile each messages.po to messages.mo unless the .mo already holds the same messages.

    Compared by content, not mtime: a fresh clone has arbitrary mtimes, and rewriting a
    committed .mo that is already right would only dirty the tree. Returns the files written.
    """
    written = []
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        if mo.exists():
            try:
                with mo.open("rb") as fh:
                    if _messages(read_mo(fh)) == _messages(catalog):
                        continue
            except (OSError, ValueError, IndexError, struct.error):
                pass  # unreadable or truncated: compile it again
        try:
            with mo.open("wb") as fh:
                write_mo(fh, catalog)
        except PermissionError:
            continue  # installed read-only: the shipped .mo is used
        written.append(mo)
    return written
