"""A runtime-only install (`emoedge[runtime]`) runs ONNX files on video: `emoedge run` works with every training and
export package missing, and a command that needs one says in one line which extra to install.

The packages of the train and export extras are made unimportable in a child process (a meta-path finder that
refuses them), which checks the import graph of the real command rather than a list kept by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]

from emoedge.export.onnx import export_onnx
from emoedge.runtime.clip import make_demo_clip

TRAIN_AND_EXPORT = (
    "albumentations", "scipy", "sklearn", "matplotlib", "tensorboard", "modelopt", "onnxslim", "nncf",
)  # fmt: skip
WITHOUT = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Missing())
from emoedge.cli import main
code = main(sys.argv[2:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print("LOADED", loaded, file=sys.stderr)
sys.exit(code)
"""


def _without(packages: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", WITHOUT, ",".join(packages), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emoedge.bench.models import random_checkpoint

    root = tmp_path_factory.mktemp("runtime-only")
    checkpoint = random_checkpoint(root / "m.pt")
    return export_onnx(checkpoint, root / "m.onnx").path


def test_run_on_an_onnx_file_needs_no_training_or_export_package(onnx_model, sample_root, tmp_path):
    clip, boxes = make_demo_clip(sample_root, tmp_path / "clip", images=3)
    events = tmp_path / "events.jsonl"
    args = ("run", "--source", str(clip), "--model", str(onnx_model), "--boxes", str(boxes))
    proc = _without(TRAIN_AND_EXPORT, *args, "--events", str(events), "-o", str(tmp_path / "out.mp4"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[-1]["type"] == "summary" and records[-1]["frames"] == 3 * 8
    assert sum(r["type"] == "person" for r in records) > 0


@pytest.mark.skipif(__import__("importlib").util.find_spec("openvino") is None, reason="OpenVINO is not installed")
def test_run_on_an_openvino_ir_folder_needs_no_training_or_export_package(onnx_model, sample_root, tmp_path):
    from emoedge.export.openvino import export_openvino

    ir = export_openvino(onnx_model, tmp_path / "ir").path
    clip, boxes = make_demo_clip(sample_root, tmp_path / "clip", images=2)
    events = tmp_path / "events.jsonl"
    args = ("run", "--source", str(clip), "--model", str(ir), "--boxes", str(boxes), "--device", "openvino")
    proc = _without(TRAIN_AND_EXPORT, *args, "--events", str(events), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[-1]["type"] == "summary" and "OpenVINO" in records[-1]["backend"]
    assert sum(r["type"] == "person" for r in records) > 0


@pytest.mark.parametrize(
    "blocked, args, extra",
    [
        ("albumentations", ("train", "sample", "--data", "nowhere"), "train"),
        ("onnxslim", ("export", "onnx", "model.pt"), "export"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(blocked, args, extra, onnx_model, tmp_path):
    if args[0] == "export":  # a real checkpoint, so that the export gets as far as its first optional import
        args = ("export", "onnx", str(onnx_model.with_suffix(".pt")), "-o", str(tmp_path / "x.onnx"))
    if args[0] == "train":
        from emoedge.data.sample import write_sample

        args = ("train", "sample", "--data", str(write_sample(tmp_path / "data")), "-o", str(tmp_path / "run"))
    proc = _without((blocked,), *args)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("emoedge: error")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines == [
        f"emoedge: error: this command needs {blocked!r}, which is not installed: pip install 'emoedge[{extra}]'"
    ]
