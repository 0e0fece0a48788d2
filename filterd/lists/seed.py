"""The seed lists shipped in blocklists/seed/: a fresh install filters offline.

Each `<category>.txt` is a small list written for filterd (domain and subdomains).
They are compiled into the index whenever no valid index exists, and are
included in every compiled index as sources `seed-<category>`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from filterd.errors import IndexFormatError
from filterd.lists.index import CompileSource, ListIndex, compile_index, swap_current
from filterd.lists.model import SourceInfo
from filterd.lists.parsers import domains

log = logging.getLogger(__name__)

BLOCKLISTS_DIR = Path(__file__).resolve().parent.parent.parent / "blocklists"
SEED_DIR = BLOCKLISTS_DIR / "seed"
SEED_LICENSE = "GPL-3.0-or-later (filterd seed list)"


def seed_sources(seed_dir: Path = SEED_DIR) -> list[CompileSource]:
    """One source per `<category>.txt` in `seed_dir` (sorted, so compiles are reproducible)."""
    out = []
    for path in sorted(seed_dir.glob("*.txt")):
        data = path.read_bytes()
        result = domains.parse(data)
        out.append(CompileSource(
            SourceInfo(name=f"seed-{path.stem}", category=path.stem, version="seed",
                       count=result.count, license=SEED_LICENSE, fetched=path.stat().st_mtime,
                       url=f"file:blocklists/seed/{path.name}"),
            result))
    return out


def ensure_index(lists_dir: Path, seed_dir: Path = SEED_DIR) -> ListIndex:
    """Open `<lists_dir>/current`; if there is none (or it is broken), compile the seed lists."""
    try:
        return ListIndex.open(lists_dir / "current")
    except IndexFormatError as exc:
        if (lists_dir / "current").exists() or (lists_dir / "current").is_symlink():
            log.warning("list index unusable (%s); compiling the seed lists until the next "
                        "`filterd lists update` or `filterd lists compile` rebuilds it from "
                        "the kept downloads", exc)
    built = compile_index(seed_sources(seed_dir), lists_dir)
    swap_current(lists_dir, built)
    return ListIndex.open(lists_dir / "current")
