"""Shared fixtures: paths to ../shared/data (skipped with a reason when absent) and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGEPRUNE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: it holds real CIFAR-10 data and pretrained weights not shipped with edgeprune."""
    if not (SHARED_DATA / "cifar10").is_dir():
        pytest.skip(f"needs the shared data folder {SHARED_DATA} (real CIFAR-10 and weights); not present here")
    return SHARED_DATA
