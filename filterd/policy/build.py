"""Moved to filterd.build (turning the appliance config into an Engine is not the pure
policy package's business); this name forwards while branches move over (remove soon)."""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module("filterd.build"), name)
