"""Fixtures for the gateway tests: network namespaces made (and removed) by each test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.netns import Lab, Namespaces, build_lab, netns_unavailable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def netns_ok() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def namespaces(netns_ok: None) -> Iterator[Namespaces]:
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        spaces.close()


@pytest.fixture
def lab(namespaces: Namespaces) -> Lab:
    return build_lab(namespaces)


@pytest.fixture
def filterd_cmd() -> list[str]:
    return [sys.executable, "-m", "filterd"]


@pytest.fixture
def repo_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}
