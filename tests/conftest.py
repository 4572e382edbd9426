"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# the hostile programs are data for tests/test_sandbox.py, never to be imported
collect_ignore_glob = ["hostile/*"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark folder (``../shared/data`` beside the repo, or ``$FAULTTUNE_DATA_DIR``)."""
    override = os.environ.get("FAULTTUNE_DATA_DIR")
    folder = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"benchmark data folder {folder} is absent")
    return folder
