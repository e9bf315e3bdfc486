"""Shared fixtures: the sample dataset, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emoedge.data.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"))
