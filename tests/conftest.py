"""Shared fixtures (the sample dataset, built once per session) and the GPU policy of the suite.

Tests marked `gpu` need TensorRT and/or a CUDA GPU and skip without them. On a GPU runner set
EMOEDGE_REQUIRE_GPU=1: every skip of a `gpu` test then fails, so a runner that lacks TensorRT (or whose GPU is not
visible) fails loudly instead of passing vacuously.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gpu_policy import NOT_APPLICABLE, REQUIRE_GPU  # type: ignore[import-not-found]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs TensorRT and/or a CUDA GPU; skips without them, fails instead with EMOEDGE_REQUIRE_GPU=1"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_GPU and report.skipped and item.get_closest_marker("gpu") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if reason.removeprefix("Skipped: ").startswith(NOT_APPLICABLE):
            return
        report.outcome = "failed"
        report.longrepr = f"EMOEDGE_REQUIRE_GPU=1, but this GPU test was skipped: {reason}"


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emoedge.data.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"))
