"""The wheel is complete: built from this checkout, installed alone into a fresh virtual environment, it lists the
shipped recipes and targets and runs `emoedge demo` in an empty folder outside the checkout.

The fresh environment gets its third-party packages from this one's site-packages through a path entry (so nothing
is downloaded), but not emoedge itself: this environment's editable install is a `.pth` hook that a plain path
entry does not run, and the test checks that emoedge is imported from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = out.glob("emoedge-*.whl")
    return found


def test_the_wheel_ships_recipes_and_targets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, folder in (("recipe", "emoedge/recipes"), ("target", "emoedge/targets")):
        shipped = sorted(p.name for p in (REPO / folder).glob("*.yaml"))
        assert shipped and all(f"{folder}/{name}" in names for name in shipped), (kind, shipped)


def test_an_installed_wheel_runs_the_demo_anywhere(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: through that path entry pip sees this environment's emoedge (editable, the same version)
    # and would skip the wheel as already installed (pip 26.3 does).
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--ignore-installed", "-q",
         str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(python), "-c", "import emoedge, pathlib; print(pathlib.Path(emoedge.__file__).resolve())"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(env_dir.resolve()), where
    demo = subprocess.run(
        [str(env_dir / "bin" / "emoedge"), "demo", "out", "--epochs", "1"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    assert (work / "out" / "tagged.mp4").stat().st_size > 0 and (work / "out" / "model.onnx").is_file()
    assert (work / "out" / "report" / "table1.md").is_file()
