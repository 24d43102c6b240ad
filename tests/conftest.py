"""Shared fixtures. Tests that need ``../shared`` skip cleanly on a machine without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEMTL_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """Root of the shared data (``../shared``); skips the test where it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def aflw2000_dev(shared: Path) -> Path:
    return shared / "data" / "aflw2000-dev"
