"""Words for categories, read from blocklists/categories.yaml (child-friendly, vi and en)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from filterd.errors import ConfigError

DEFAULT_CATEGORIES_FILE = Path(__file__).resolve().parents[2] / "blocklists" / "categories.yaml"


@dataclass(frozen=True, slots=True)
class CategoryWords:
    key: str
    vi: str
    en: str
    child_vi: str
    child_en: str
    sensitive: bool = False

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi

    def child(self, lang: str) -> str:
        return self.child_en if lang == "en" else self.child_vi


def load_categories(path: str | Path = DEFAULT_CATEGORIES_FILE) -> Mapping[str, CategoryWords]:
    """Load the category map; a missing word or wrong type is a ConfigError naming the key."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read category map: {exc}", file=str(path)) from exc
    cats = doc.get("categories") if isinstance(doc, dict) else None
    if not isinstance(cats, dict):
        raise ConfigError("no 'categories' mapping", file=str(path), key="categories")
    out: dict[str, CategoryWords] = {}
    for key, entry in cats.items():
        if not isinstance(entry, dict):
            raise ConfigError("category must be a mapping", file=str(path), key=f"categories.{key}")
        try:
            words = {f: entry[f] for f in ("vi", "en", "child_vi", "child_en")}
        except KeyError as exc:
            raise ConfigError(
                f"missing {exc.args[0]}", file=str(path), key=f"categories.{key}"
            ) from exc
        if not all(isinstance(v, str) and v for v in words.values()):
            raise ConfigError(
                "words must be non-empty text", file=str(path), key=f"categories.{key}"
            )
        sensitive = entry.get("sensitive", False)
        if not isinstance(sensitive, bool):
            raise ConfigError(
                "sensitive must be true/false", file=str(path), key=f"categories.{key}.sensitive"
            )
        out[str(key)] = CategoryWords(key=str(key), sensitive=sensitive, **words)
    return MappingProxyType(out)
