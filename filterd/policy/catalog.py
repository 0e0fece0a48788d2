"""The category catalog (`blocklists/categories.yaml`): every category a policy may name.

Order matters: the catalog lists categories from most to least serious, and when
a name is in several blocked categories the Decision reports the first one, so
every path reports the same category for the same name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from filterd.words.messages import type_code
from filterd.yamlsrc import Problems, YMap
from filterd.yamlsrc import load as load_yaml

_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TEXT_KEYS = ("vi", "en", "child_vi", "child_en")


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    vi: str
    en: str
    child_vi: str
    child_en: str
    sensitive: bool
    rank: int            # position in the catalog: lower = more serious

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi

    def child(self, lang: str) -> str:
        return self.child_en if lang == "en" else self.child_vi


class Catalog(Mapping[str, Category]):
    """Immutable id -> Category mapping, in catalog order."""

    def __init__(self, categories: list[Category], file: str = "<builtin>") -> None:
        self._by_id = {c.id: c for c in categories}
        self.file = file

    def __getitem__(self, key: str) -> Category:
        return self._by_id[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def rank(self, category: str) -> int:
        c = self._by_id.get(category)
        return c.rank if c else len(self._by_id)


def parse_catalog(raw: object, file: str) -> Catalog:
    problems = Problems()
    if not isinstance(raw, YMap):
        problems.add("shape.mapping", file=file, line=1, got_type=type_code(raw))
        problems.raise_if_any()
    assert isinstance(raw, YMap)
    for key in raw:
        if key not in ("version", "categories"):
            problems.add("shape.unknown_key", raw, key, known="categories, version")
    if raw.get("version") != 1:
        problems.add("catalog.version", raw, "version")
    cats = raw.get("categories")
    out: list[Category] = []
    if not isinstance(cats, YMap) or not cats:
        problems.add("catalog.categories", raw, "categories")
    else:
        for cid, body in cats.items():
            path = f"categories.{cid}"
            if not isinstance(cid, str) or not _ID.match(cid):
                problems.add("catalog.id", cats, cid, path=path)
                continue
            if not isinstance(body, YMap):
                problems.add("shape.mapping", cats, cid, path=path, got_type=type_code(body))
                continue
            ok = True
            for k in body:
                if k not in (*_TEXT_KEYS, "sensitive"):
                    problems.add("shape.unknown_key", body, k, path=f"{path}.{k}",
                                 known=", ".join((*_TEXT_KEYS, "sensitive")))
                    ok = False
            for k in _TEXT_KEYS:
                if not isinstance(body.get(k), str) or not body.get(k):
                    problems.add("shape.missing_text", body, k, path=f"{path}.{k}")
                    ok = False
            sensitive = body.get("sensitive", False)
            if not isinstance(sensitive, bool):
                problems.add("shape.bool", body, "sensitive", path=f"{path}.sensitive")
                ok = False
            if ok:
                out.append(Category(cid, body["vi"], body["en"], body["child_vi"],
                                    body["child_en"], sensitive, len(out)))
    problems.raise_if_any()
    return Catalog(out, file)


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate the category catalog; raises ConfigError(s) naming file and line."""
    return parse_catalog(load_yaml(path), str(path))
