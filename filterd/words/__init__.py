"""The one catalog of every word a person reads, and the one way a Decision becomes words.

- `terms`: fixed words by kind and code (reasons, actions, audit events, roles, list
  states, review states, block modes, safe-search levels, paths): `term(kind, code, lang)`.
- `messages`: error messages by code with parameters (`render_error(err, lang)`).
- `dates`: moments in the school's zone, one format per language (`format_datetime`).
- `explain`: `Words` (the school's own words: categories from the configured catalog,
  groups and schedules from the policy, plus the fixed ones) and `explain(decision, ...)`,
  used by `filterd check`, the why page, the block page, the DNS EDE text and the office.

Pure: no I/O; the callers pass the loaded catalog and policy in.
"""

from __future__ import annotations

from typing import Any

from filterd.words.dates import format_date, format_datetime, format_duration, format_time
from filterd.words.messages import message, render_error, render_errors
from filterd.words.terms import LANGS, term, terms

__all__ = ["LANGS", "Words", "explain", "format_date", "format_datetime", "format_duration",
           "format_time", "message", "render_error", "render_errors", "term", "terms"]


def __getattr__(name: str) -> Any:
    # explain imports the policy package, which imports filterd.errors -> this package's
    # messages: loaded on first use so that chain never meets a half-initialised module.
    if name in ("Words", "explain"):
        import importlib

        # import_module, not `from filterd.words import explain`: the latter asks this very
        # __getattr__ for "explain" before the submodule exists, and recurses.
        return getattr(importlib.import_module("filterd.words.explain"), name)
    raise AttributeError(name)
