"""Shared fixtures. Integration fixtures that start real servers live beside their tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# ../shared beside the repo; worktrees under wt/<name>/ find it one level further up.
SHARED_DATA = next((p for p in (REPO.parent / "shared" / "data" / "blocklists",
                                REPO.parent.parent / "shared" / "data" / "blocklists")
                    if p.is_dir()), REPO.parent / "shared" / "data" / "blocklists")
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture
def shared_blocklists() -> Path:
    """The real category lists in ../shared/data/blocklists (in CI; absent on a fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real blocklists not found at {SHARED_DATA} "
                    "(only CI and developers have ../shared)")
    return SHARED_DATA


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
