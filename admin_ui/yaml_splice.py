"""Write a group form back into its policy file, changing only the lines of the edited keys.

A round-trip dump of the whole document re-indents other groups, moves comments and
reflows long lists (ruamel cannot guess the shipped file's mixed style). So the new
values are spliced into the original text instead: every line outside the keys the
form changed stays byte for byte; inside an edited list, the items kept keep their
lines (and their `# phòng máy 1` comments), removed items lose theirs, new items are
added in the list's own style. ruamel.yaml only tells where each key and item is.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML

# numbers, times (base 60 in YAML 1.1) and the like would not read back as text
_NUMERIC = re.compile(r"[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"
                      r"|0x[0-9a-fA-F]+|0o[0-7]+|[0-9]+(?::[0-9]+)+|\.(?:inf|nan)", re.I)
_RESERVED = {"off", "on", "yes", "no", "y", "n", "true", "false", "null", "~", ""}


def _rt() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    return y


def scalar(value: Any) -> str:
    """A YAML scalar as a person would write it: plain when that reads back the same
    text (under YAML 1.1 and 1.2 alike), else double-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    t = str(value)
    quote = (t.lower() in _RESERVED or t[0] in "-?:,[]{}#&*!|>'\"%@`" or t != t.strip()
             or ": " in t or " #" in t or t.endswith(":") or any(c in t for c in "\n\t\"'\\")
             or _NUMERIC.fullmatch(t) is not None)
    if not quote:
        return t
    return '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plain(value: Any) -> Any:
    """A ruamel node as plain Python (for comparing old and new values)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _comment_of(line: str) -> str:
    """The trailing `  # ...` of a line (outside quotes), or ''."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and i > 0 and line[i - 1] in " \t":
            j = i
            while j > 0 and line[j - 1] in " \t":
                j -= 1
            return line[j:]
    return ""


def _is_filler(line: str, col: int) -> bool:
    """A blank line or a comment not deeper than `col`: it belongs to what follows."""
    s = line.strip()
    return not s or (s.startswith("#") and len(line) - len(line.lstrip()) <= col)


class Splicer:
    """Edits one group's keys in `text`; `result()` is the new text."""

    def __init__(self, text: str, gid: str) -> None:
        self.lines = text.splitlines(keepends=True)
        self.nl = "\n"
        doc = _rt().load(text)
        groups = doc["groups"]
        self.body = groups[gid]
        keys = list(groups)
        gline, gcol = groups.lc.key(gid)
        nxt = keys.index(gid) + 1
        if nxt < len(keys):
            end = groups.lc.key(keys[nxt])[0]
        else:
            tops = list(doc)
            i = tops.index("groups") + 1
            end = doc.lc.key(tops[i])[0] if i < len(tops) else len(self.lines)
        while end > gline + 1 and _is_filler(self.lines[end - 1], gcol):
            end -= 1
        self.group_line, self.group_col, self.end = gline, gcol, end
        bkeys = list(self.body) if isinstance(self.body, dict) else []
        self.col = self.body.lc.key(bkeys[0])[1] if bkeys else gcol + 2
        self.ranges: dict[str, tuple[int, int]] = {}
        for i, k in enumerate(bkeys):
            start = self.body.lc.key(k)[0]
            stop = self.body.lc.key(bkeys[i + 1])[0] if i + 1 < len(bkeys) else end
            while stop > start + 1 and _is_filler(self.lines[stop - 1], self.col):
                stop -= 1
            self.ranges[str(k)] = (start, stop)
        self.edits: list[tuple[int, int, list[str]]] = []   # (start, stop, new lines)
        self.appended: list[str] = []

    def set(self, key: str, value: Any) -> None:
        """Give `key` this value (None or empty: remove it); unchanged values are left."""
        old = self.body.get(key) if isinstance(self.body, dict) else None
        empty = value in (None, "", [], {})
        if key in self.ranges and not empty and plain(old) == plain(value):
            return
        if key not in self.ranges:
            if not empty:
                self.appended += self._render(key, value)
            return
        start, stop = self.ranges[key]
        if empty:
            self.edits.append((start, stop, []))
        elif isinstance(value, list) and isinstance(old, list) and all(
                not isinstance(v, dict | list) for v in value):
            self.edits.append((start, stop, self._list(key, old, value, start, stop)))
        else:
            keep = _comment_of(self.lines[start].rstrip("\r\n")) if not isinstance(
                value, dict) else ""
            new = self._render(key, value)
            if keep and len(new) == 1:
                new[0] = new[0].rstrip("\n") + keep + self.nl
            self.edits.append((start, stop, new))

    def _render(self, key: str, value: Any) -> list[str]:
        pad = " " * self.col
        if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
            return [f"{pad}{key}: [{', '.join(scalar(v) for v in value)}]{self.nl}"]
        if isinstance(value, dict):
            y = YAML()
            y.indent(mapping=2, sequence=4, offset=2)
            y.width = 4096
            buf = io.StringIO()
            y.dump({key: plain(value)}, buf)
            return [pad + line + self.nl for line in buf.getvalue().splitlines()]
        return [f"{pad}{key}: {scalar(value)}{self.nl}"]

    def _list(self, key: str, old: list, new: list, start: int, stop: int) -> list[str]:
        """The list's lines with kept items' lines kept, in the list's own style."""
        first = self.lines[start]
        try:
            flow = old.fa.flow_style()
        except AttributeError:
            flow = False
        if flow or not old:
            keep = _comment_of(first.rstrip("\r\n"))
            line = self._render(key, new)[0]
            return [line.rstrip("\n") + keep + self.nl]
        item_lines = [old.lc.item(i)[0] for i in range(len(old))]
        bounds = [*item_lines[1:], stop]
        by_value: dict[str, list[list[str]]] = {}
        for i, v in enumerate(old):
            stop_i = bounds[i]
            while stop_i > item_lines[i] + 1 and _is_filler(self.lines[stop_i - 1], 0):
                stop_i -= 1
            by_value.setdefault(str(v), []).append(self.lines[item_lines[i]:stop_i])
        item_col = old.lc.item(0)[1]
        dash = self.lines[item_lines[0]]
        dash_col = len(dash) - len(dash.lstrip())
        out = self.lines[start:item_lines[0]]     # the key line and any comment before items
        for v in new:
            kept = by_value.get(str(v))
            if kept:
                out += kept.pop(0)
            else:
                out.append(" " * dash_col + "-" + " " * max(1, item_col - dash_col - 1)
                           + scalar(v) + self.nl)
        return out

    def result(self) -> str:
        lines = list(self.lines)
        if self.appended:
            lines[self.end:self.end] = self.appended
        for start, stop, new in sorted(self.edits, reverse=True):
            lines[start:stop] = new
        return "".join(lines)
