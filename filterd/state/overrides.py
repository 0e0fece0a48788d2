"""`<data_dir>/overrides.json`, the teachers' temporary overrides: the file's one codec.

The admin page edits the list as plain records (`read_items`, `write_items`, under its
lock); `build_engine` reads it as a validated OverrideSet (`load`). Both go through the
same envelope, `{"version": 1, "overrides": [...]}` (format: filterd.policy.overrides).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filterd.errors import ConfigError
from filterd.policy.overrides import FORMAT_VERSION, Override, OverrideSet
from filterd.state.atomic import atomic_write

__all__ = ["encode", "load", "read_items", "save", "write_items"]


def encode(items: Iterable[dict[str, Any]]) -> str:
    return json.dumps({"version": FORMAT_VERSION, "overrides": list(items)},
                      ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def read_items(path: str | Path) -> list[dict[str, Any]]:
    """The records in the file (a missing file: none); a broken file is a ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read overrides: {exc}", file=str(path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION \
            or not isinstance(doc.get("overrides"), list):
        raise ConfigError(f'expected {{"version": {FORMAT_VERSION}, "overrides": [...]}}',
                          file=str(path))
    return [dict(d) if isinstance(d, dict) else d for d in doc["overrides"]]


def write_items(path: str | Path, items: Iterable[dict[str, Any]], *,
                keep_previous: bool = True) -> None:
    atomic_write(path, encode(items), mode=0o640, keep_previous=keep_previous)


def load(path: str | Path, groups: Iterable[str] | None = None) -> OverrideSet:
    """The file as a validated OverrideSet (unknown groups refused when `groups` is given)."""
    known = set(groups) if groups is not None else None
    out = []
    for i, d in enumerate(read_items(path)):
        key = f"overrides[{i}]"
        try:
            o = Override.from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"invalid override: {exc}", file=str(path), key=key) from None
        if known is not None and o.group not in known:
            raise ConfigError(f"override {o.id!r} names an unknown group {o.group!r}",
                              file=str(path), key=key)
        out.append(o)
    return OverrideSet(out)


def save(path: str | Path, overrides: OverrideSet) -> None:
    write_items(path, (o.to_dict() for o in overrides), keep_previous=False)
