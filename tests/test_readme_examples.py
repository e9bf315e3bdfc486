"""The README's examples, run as written on the installed set: every `emoedge …` line of its bash blocks.

A folder is laid out as the examples assume it (a model trained as `runs/paper/best.pt` — here the sample recipe's
tiny model with random weights —, `model.onnx` exported from it, a clip, an image folder, a boxes file, YOLO weights
built from Ultralytics' model YAML), `/data/EMOTIC` stands for the sample dataset, and each example runs there as a
user types it. What needs hardware or a server this machine does not have, or hours, is named in `NOT_HERE` with
the reason; every other example must exit 0. A new example in the README is run here without anyone listing it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import REPO, emoedge_command, user_env  # type: ignore[import-not-found]

README = REPO / "README.md"
NOT_HERE = {  # a phrase of the example: why it does not run on this machine
    "train paper": "trains three ResNet50s for the paper's 50 epochs (hours); `make demo` trains the sample recipe",
    "train train/ablation": "30 epochs of three ResNet50s (hours)",
    ".engine": "a TensorRT engine: an NVIDIA GPU and TensorRT",
    "--target jetson-orin": "a TensorRT engine: an NVIDIA GPU and TensorRT",
    "--target desktop-gpu": "a TensorRT engine: an NVIDIA GPU and TensorRT",
    "--source 0": "a webcam",
    "rtsp://": "an RTSP camera",
    "grpc://": "a Triton server",
    "emoedge serve": "PyTriton's Triton server (the serving set: `make test SET=serve`)",
    "mqtt://user:pass@broker": "an MQTT broker named `broker`",
    "--http 8080": "a service run, which runs until it is stopped",
    "emoedge pretrain": "an emotion-image collection and a ResNet50 (hours)",
}
AFTER = ("eval model-int8-cpu.onnx",)  # their inputs come from an example further down the README


def readme_examples() -> list[str]:
    """Every `emoedge …` line in the README's bash blocks, its comment removed and `[optional]` parts dropped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command.startswith("emoedge "):
                lines.append(re.sub(r"\s*\[[^\]]*\]", "", command))
    return lines


def _why_not(example: str) -> str | None:
    return next((why for phrase, why in NOT_HERE.items() if phrase in example), None)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, sample_root: Path) -> Path:
    """The files the examples name, made with emoedge's own library (and Ultralytics for the detector)."""
    from emoedge.bench.models import random_checkpoint
    from emoedge.export.onnx import export_onnx
    from emoedge.runtime.clip import make_demo_clip

    work = tmp_path_factory.mktemp("readme")
    (work / "runs" / "paper").mkdir(parents=True)
    random_checkpoint(work / "runs" / "paper" / "best.pt", "sample")
    shutil.copy(work / "runs" / "paper" / "best.pt", work / "best.pt")
    export_onnx(work / "best.pt", work / "model.onnx")
    clip, _ = make_demo_clip(sample_root, work / "made", images=3)
    shutil.copy(clip, work / "clip.mp4")
    shutil.copy(clip, work / "street.mp4")
    frames = work / "frames"
    frames.mkdir()
    images = sorted((sample_root / "emotic").rglob("*.jpg"))[:6]
    for i, image in enumerate(images):
        shutil.copy(image, frames / f"{i:04d}.jpg")
    shutil.copy(images[0], work / "street.jpg")
    (work / "boxes.json").write_text('{"frames": [' + ", ".join(
        f'{{"file": "{i:04d}.jpg", "boxes": [[4, 4, 60, 90]]}}' for i in range(len(images))
    ) + "]}")  # fmt: skip
    try:
        import ultralytics

        ultralytics.YOLO("yolo11n.yaml").save(work / "yolo11n.pt")  # untrained: the code path, not its accuracy
    except ImportError:
        pass
    return work


def _run(example: str, work: Path, sample_root: Path) -> tuple[int, str]:
    argv = [a.replace("/data/EMOTIC", str(sample_root)) for a in shlex.split(example)[1:]]
    proc = subprocess.run(emoedge_command(*argv), cwd=work, env=user_env(), capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stderr[-3000:]


def test_the_readme_has_examples_of_every_stage() -> None:
    examples = readme_examples()
    commands = {example.split()[1] for example in examples}
    assert commands >= {"data", "train", "eval", "explain", "export", "run", "bench"}
    assert sum(_why_not(e) is None for e in examples) >= 15  # most of them run here


def test_the_readme_examples_run_as_written(folder: Path, sample_root: Path) -> None:
    examples = [e for e in readme_examples() if _why_not(e) is None]
    if not (folder / "yolo11n.pt").exists():
        examples = [e for e in examples if "yolo11n" not in e]  # the runtime extra is not installed
    ordered = [e for e in examples if not e.startswith(tuple(f"emoedge {a}" for a in AFTER))]
    ordered += [e for e in examples if e not in ordered]
    failed = []
    for example in ordered:
        code, stderr = _run(example, folder, sample_root)
        if code != 0:
            failed.append(f"{example}\n  exit {code}: {stderr.strip().splitlines()[-1] if stderr.strip() else ''}")
    assert not failed, "\n".join(failed)
