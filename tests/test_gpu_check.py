"""`make gpu-check` (benchmarks/gpu_check.py) on a machine without a CUDA GPU: it must fail at once, in one line
naming what it checked and what is missing, and write nothing — never pass having run nothing. Also the pieces that
need no GPU: the results folder's name and the test counts read from pytest's junit XML.

CUDA_VISIBLE_DEVICES="" hides any GPU, so these hold on a GPU machine too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def _load_script():
    """The script as a module (benchmarks/ is no package); registered first, as its dataclasses need."""
    spec = importlib.util.spec_from_file_location("benchmarks_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _assert_the_refusal(line: str) -> None:
    assert line.startswith("gpu-check: no CUDA GPU"), line
    assert "torch.cuda.is_available() = False" in line and "TensorRT" in line and "onnxruntime" in line, line


def test_without_a_gpu_the_script_fails_in_one_line_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--results", str(results)], env=NO_GPU, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    _assert_the_refusal(lines[0])
    assert proc.stdout == "" and not results.exists()


def test_without_a_gpu_make_gpu_check_fails_with_the_scripts_line_and_writes_no_results():
    """Through make, as users run it (the venv of this interpreter; its set-up is not redone here). make adds its
    own `make: *** … Error 2` line to stderr (`make[1]: ***` under another make); the check's own line is the only
    other one."""
    before = set((REPO / "benchmarks" / "results").glob("gpu-*"))
    venv = sys.prefix
    proc = subprocess.run(["make", "--no-print-directory", "-o", f"{venv}/.installed", "gpu-check", f"VENV={venv}",
                           "SET=x86"], cwd=REPO, env=NO_GPU, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode != 0, proc.stdout + proc.stderr
    ours = [line for line in proc.stderr.strip().splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert len(ours) == 1, proc.stderr
    _assert_the_refusal(ours[0])
    assert set((REPO / "benchmarks" / "results").glob("gpu-*")) == before


@pytest.mark.parametrize(
    "name, folder",
    [
        ("NVIDIA H200", "nvidia-h200"),
        ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
        ("Orin", "orin"),
        ("  Tesla T4 (PCIe) ", "tesla-t4-pcie"),
        ("???", "unknown-gpu"),
    ],
)
def test_the_results_folder_is_the_gpu_name_slugged(name, folder):
    assert gpu_check.slug(name) == folder


PROBE = """
import pytest

def test_ok():
    pass

def test_broken():
    assert False

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
"""


def test_counts_come_from_pytests_junit_xml(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull, str(tmp_path),
                    f"--junitxml={junit}"], cwd=tmp_path, capture_output=True, timeout=120)  # fmt: skip
    counts = gpu_check.junit_counts(junit)
    assert {k: counts[k] for k in ("tests", "passed", "failures", "errors", "skipped")} == {
        "tests": 3, "passed": 1, "failures": 1, "errors": 0, "skipped": 1,
    }  # fmt: skip
    assert counts["failed_tests"] == ["test_probe::test_broken"]
    assert gpu_check.junit_counts(tmp_path / "absent.xml") == {}
