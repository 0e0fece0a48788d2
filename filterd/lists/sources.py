"""blocklists/sources.yaml: which lists to fetch, in which format, for which category.

Strict: an unknown key, an unknown category or format, a duplicate name or a bad
URL is a ConfigError naming the file, line and key. Nothing loads on error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from filterd.errors import ConfigError, ConfigErrors
from filterd.lists.model import MATCHES
from filterd.lists.parsers import FORMATS

DEFAULTS = {"timeout": 120.0, "max_bytes": 300 * 1024 * 1024, "max_shrink": 0.5}
_KEYS = {"name", "url", "format", "category", "match", "license", "enabled", "ut1_category",
         "timeout", "max_bytes", "max_shrink"}
_REQUIRED = ("name", "url", "format", "category", "license")


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    format: str
    category: str
    license: str
    match: str = "subtree"
    enabled: bool = True
    ut1_category: str | None = None
    timeout: float = DEFAULTS["timeout"]
    max_bytes: int = int(DEFAULTS["max_bytes"])
    max_shrink: float = DEFAULTS["max_shrink"]
    file: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        def bad(key: str, message: str) -> ConfigError:
            return ConfigError(message, file=self.file, line=self.line, key=f"{self.name}.{key}")

        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise bad("name", "a source name uses letters, digits, '-', '_' and '.' only")
        if self.format not in FORMATS:
            raise bad("format", f"unknown format {self.format!r} (known: {', '.join(FORMATS)})")
        if self.match not in MATCHES:
            raise bad("match", f"match must be one of {MATCHES}")
        fixed = {"hosts": "exact", "ut1": "subtree", "adblock": "subtree"}.get(self.format)
        if fixed and self.match != fixed:
            raise bad("match", f"{self.format} lists always match {fixed}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad("url", f"not an http(s) URL: {self.url!r}")
        if not 0 < self.timeout <= 3600:
            raise bad("timeout", "timeout must be between 0 and 3600 seconds")
        if self.max_bytes <= 0:
            raise bad("max_bytes", "max_bytes must be positive")
        if not 0 <= self.max_shrink <= 1:
            raise bad("max_shrink", "max_shrink is a share between 0 and 1")

    @property
    def exact(self) -> bool:
        return self.match == "exact"


def load_categories(path: str | Path) -> frozenset[str]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    try:
        return frozenset(data["categories"])
    except (TypeError, KeyError) as exc:
        raise ConfigError("no `categories:` mapping", file=str(path)) from exc


def load_sources(path: str | Path, categories: Iterable[str] | None = None) -> tuple[Source, ...]:
    """Every source in `path` (enabled or not); `categories`: default categories.yaml beside it."""
    path = Path(path)
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=fname) from exc
    known = frozenset(categories) if categories is not None else load_categories(
        path.parent / "categories.yaml")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=fname,
                          line=mark.line + 1 if mark else None) from exc
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise ConfigError("expected a mapping with `version` and `sources`", file=fname)
    top = _node_map(root)
    for key in data:
        if key not in ("version", "defaults", "sources"):
            raise ConfigError("unknown key", file=fname, line=_line(top.get(key)), key=str(key))
    if data.get("version") != 1:
        raise ConfigError("version must be 1", file=fname, line=_line(top.get("version")),
                          key="version")
    defaults = dict(DEFAULTS)
    for key, value in (data.get("defaults") or {}).items():
        if key not in DEFAULTS:
            raise ConfigError("unknown key", file=fname, line=_line(top.get("defaults")),
                              key=f"defaults.{key}")
        defaults[key] = value
    items = data.get("sources")
    if not isinstance(items, list) or not items:
        raise ConfigError("`sources` must be a non-empty list", file=fname,
                          line=_line(top.get("sources")), key="sources")
    nodes = top["sources"].value
    errors: list[ConfigError] = []
    out: list[Source] = []
    seen: set[str] = set()
    for item, node in zip(items, nodes, strict=True):
        try:
            source = _source(item, node, defaults, known, fname)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if source.name in seen:
            errors.append(ConfigError("duplicate source name", file=fname, line=source.line,
                                      key=source.name))
        seen.add(source.name)
        out.append(source)
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    return tuple(out)


def _source(item: Any, node: yaml.Node, defaults: dict[str, Any], known: frozenset[str],
            fname: str) -> Source:
    line = _line(node)
    if not isinstance(item, dict):
        raise ConfigError("a source is a mapping", file=fname, line=line, key="sources")
    fields = _node_map(node)
    name = str(item.get("name", "?"))
    for key in item:
        if key not in _KEYS:
            raise ConfigError("unknown key", file=fname, line=_line(fields.get(key)) or line,
                              key=f"{name}.{key}")
    for key in _REQUIRED:
        if not isinstance(item.get(key), str) or not item[key]:
            raise ConfigError("required text value", file=fname,
                              line=_line(fields.get(key)) or line, key=f"{name}.{key}")
    if item["category"] not in known:
        raise ConfigError(f"unknown category {item['category']!r}", file=fname,
                          line=_line(fields.get("category")), key=f"{name}.category")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("enabled is true or false", file=fname,
                          line=_line(fields.get("enabled")), key=f"{name}.enabled")
    values = {k: item.get(k, defaults[k]) for k in DEFAULTS}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError("must be a number", file=fname,
                              line=_line(fields.get(key)) or line, key=f"{name}.{key}")
    if not isinstance(values["max_bytes"], int):
        raise ConfigError("must be a whole number", file=fname,
                          line=_line(fields.get("max_bytes")) or line, key=f"{name}.max_bytes")
    match = item.get("match", "exact" if item["format"] == "hosts" else "subtree")
    ut1_category = item.get("ut1_category")
    if ut1_category is not None and not isinstance(ut1_category, str):
        raise ConfigError("must be text", file=fname, line=_line(fields.get("ut1_category")),
                          key=f"{name}.ut1_category")
    return Source(name=item["name"], url=item["url"], format=item["format"],
                  category=item["category"], license=item["license"], match=match,
                  enabled=enabled, ut1_category=ut1_category, timeout=float(values["timeout"]),
                  max_bytes=int(values["max_bytes"]), max_shrink=float(values["max_shrink"]),
                  file=fname, line=line)


def _node_map(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None
