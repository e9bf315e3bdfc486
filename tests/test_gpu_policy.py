"""EMOEDGE_REQUIRE_GPU=1 turns the skip of every `gpu` test into a failure (so a GPU runner without TensorRT fails)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

PROBE = """
import pytest

@pytest.mark.gpu
def test_needs_tensorrt():
    pytest.importorskip("a_module_that_is_not_installed_anywhere")

@pytest.mark.gpu
def test_for_other_versions():
    pytest.skip("not applicable here: a path of another TensorRT version")

def test_plain():
    assert True
"""


@pytest.mark.parametrize("required, outcome", [("", "1 passed, 2 skipped"), ("1", "1 failed, 1 passed, 1 skipped")])
def test_require_gpu_turns_gpu_skips_into_failures(tmp_path, required, outcome):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    shutil.copy(HERE / "gpu_policy.py", tmp_path / "gpu_policy.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "EMOEDGE_REQUIRE_GPU": required}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in proc.stdout, proc.stdout[-2000:]
    assert proc.returncode == (1 if required else 0)
    if required:
        assert "EMOEDGE_REQUIRE_GPU=1, but this GPU test was skipped" in proc.stdout
