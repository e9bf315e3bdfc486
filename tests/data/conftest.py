"""Fixtures of the data tests: a writable copy of the shared sample dataset (`sample_root`, tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def data_sample_copy(sample_root: Path, tmp_path: Path) -> Path:
    """A private copy of the sample that a test may damage (`sample_root` itself must stay intact)."""
    return Path(shutil.copytree(sample_root, tmp_path / "sample"))
