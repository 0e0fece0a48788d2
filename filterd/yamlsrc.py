"""YAML loading that remembers where every key came from.

Configuration and policy errors must name the file, the line and the key, so
the loader returns dict and list subclasses that carry the line of each key and
item. It also resolves scalars the YAML 1.2 way: only `true`/`false` are
booleans (so `safe_search: off` stays the string "off" and a country code `no`
stays "no") and `07:00` stays a string instead of becoming the base-60 integer
420 as YAML 1.1 would make it. Duplicate keys are errors, not "last one wins".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from filterd.errors import ConfigError, ConfigErrors
from filterd.words.messages import MESSAGES


class YMap(dict):
    """A mapping from a YAML file; `line_of(key)` is the 1-based line of that key."""

    file: str
    line: int
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class YList(list):
    """A sequence from a YAML file; `line_of(i)` is the 1-based line of item i."""

    file: str
    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and line-carrying containers."""

    file_name = "<yaml>"


_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    value = loader.construct_scalar(node)
    if value.startswith("0o"):
        return int(value[2:], 8)
    return int(value, 0) if value.startswith("0x") else int(value, 10)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> YMap:
    result = YMap()
    result.file = loader.file_name
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    yield result
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise ConfigError.coded("yaml.key_not_plain", file=loader.file_name,
                                    line=line) from None
        if key in result:
            raise ConfigError.coded("yaml.duplicate_key", file=loader.file_name, line=line,
                                    key=str(key), first=result.key_lines[key])
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> YList:
    result = YList()
    result.file = loader.file_name
    result.line = node.start_mark.line + 1
    result.item_lines = [n.start_mark.line + 1 for n in node.value]
    yield result
    result.extend(loader.construct_object(n, deep=True) for n in node.value)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
# Timestamps are not resolved implicitly (no resolver above), so dates stay strings.


def loads(text: str, file: str = "<yaml>") -> Any:
    """Parse one YAML document; syntax errors become ConfigError with the line."""
    loader = _Loader(text)
    loader.file_name = file
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError.coded("yaml.syntax", file=file, line=line,
                                problem=str(exc.problem or exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError.coded("yaml.syntax", file=file, problem=str(exc)) from None
    finally:
        loader.dispose()


def load(path: str | Path) -> Any:
    """Read and parse a YAML file; an unreadable file is a ConfigError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.coded("file.unreadable", file=str(path), error=str(exc)) from None
    return loads(text, str(path))


class Problems:
    """Collects every error found in one pass so a person can fix them all at once."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, message: str, where: YMap | YList | None = None, key: Any = None, *,
            file: str | None = None, line: int | None = None, path: str | None = None,
            **params: Any) -> None:
        """Record an error at `where[key]` (a YMap key or a YList index); `path` names the key.

        `message` is a code of filterd.words.messages (its `params` given as keywords), or
        a plain English sentence. The same problem at the same place is kept once.
        """
        if path is None and isinstance(key, str):
            path = key
        if where is not None:
            file = file or getattr(where, "file", None)
            if line is None:
                if (isinstance(where, YMap) and key is not None) or (
                        isinstance(where, YList) and isinstance(key, int)):
                    line = where.line_of(key)
                else:
                    line = getattr(where, "line", None)
        if message in MESSAGES:
            err = ConfigError.coded(message, file=file, line=line, key=path, **params)
        else:
            err = ConfigError(message, file=file, line=line, key=path)
        self._append(err)

    def add_error(self, exc: Exception, where: YMap | YList | None = None, key: Any = None, *,
                  file: str | None = None, line: int | None = None,
                  path: str | None = None) -> None:
        """Record a parser's ValueError; a CodedValueError keeps its code and parameters."""
        code = getattr(exc, "code", None)
        if code in MESSAGES:
            self.add(code, where, key, file=file, line=line, path=path, **exc.params)  # type: ignore[attr-defined]
        else:
            self.add(str(exc), where, key, file=file, line=line, path=path)

    def _append(self, err: ConfigError) -> None:
        mark = (err.file, err.line, err.key, err.message)
        if any((e.file, e.line, e.key, e.message) == mark for e in self.errors):
            return
        self.errors.append(err)

    def extend(self, error: ConfigError) -> None:
        for e in (error.errors if isinstance(error, ConfigErrors) else [error]):
            self._append(e)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def __iter__(self) -> Iterator[ConfigError]:
        return iter(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            if len(self.errors) == 1:
                raise self.errors[0]
            # in reading order: file, then line (errors without a line first)
            ordered = sorted(self.errors, key=lambda e: (e.file or "", e.line or 0))
            raise ConfigErrors(ordered)


def type_name(value: Any) -> str:
    """Words for the type of a YAML value, for error messages (English; codes: type_code)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (empty)"
    return type(value).__name__
