"""Shared fixtures: small models and the location of the real sample data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Caches (precision probes, label maps) go to a folder of this test session, never the user's."""
    os.environ["AGRNET_CACHE"] = str(tmp_path_factory.mktemp("agrnet-cache"))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``, or a skip with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA
