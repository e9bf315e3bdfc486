"""The layers of ARCHITECTURE.md hold: import-linter's contract (pyproject.toml) passes, and fails on a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # before the editable install's finder
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def lint_available() -> None:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"import-linter is not installed beside {sys.executable} (it is in the dev extra)")


def test_the_import_layers_hold(lint_available):
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("backends/base.py", "emoedge.export.onnx"),  # backends never import export
        ("config.py", "emoedge.training.loss"),  # config never imports training
        ("runtime/engine.py", "emoedge.training.evaluate"),  # stages never import one another
        ("formats/checkpoint.py", "emoedge.backends"),  # the model-file layer sits below the backends
    ],
)
def test_a_deliberate_violation_is_caught(lint_available, tmp_path, module, forbidden):
    shutil.copytree(REPO / "emoedge", tmp_path / "emoedge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "emoedge" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\nimport {forbidden}  # noqa\n", encoding="utf-8")
    proc = _lint(tmp_path)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "BROKEN" in proc.stdout and forbidden in proc.stdout
