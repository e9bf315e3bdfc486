"""One evaluator for every model file: `emoedge eval` on a checkpoint, its ONNX, FP16 and both INT8 ONNX files
(for TensorRT and for CPUs) writes the same report, naming the file, backend and precision it measured."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from cli_helpers import run_cli  # type: ignore[import-not-found]

from emoedge.config import load_recipe
from emoedge.errors import EmoedgeError
from emoedge.evaluation.evaluate import evaluate_model
from emoedge.export.onnx import export_onnx
from emoedge.resources import find

needs_modelopt = pytest.mark.skipif(
    __import__("importlib").util.find_spec("modelopt") is None, reason="needs nvidia-modelopt (the export extra)"
)


@pytest.fixture(scope="module")
def sample_model(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample recipe trained on the sample dataset, and its FP32 ONNX."""
    from emoedge.training.trainer import train

    out = tmp_path_factory.mktemp("any-model")
    result = train(load_recipe(find("recipe", "sample")), out / "run", data_root=sample_root, progress=False)
    return {"checkpoint": result.best, "fp32": export_onnx(result.best, out / "model.onnx").path}


def _eval_cli(model: Path, data: Path, out: Path) -> dict:
    proc = run_cli("eval", str(model), "--data", str(data), "-o", str(out), "--workers", "0", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"model: {model}" in proc.stdout and "test mAP" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert (out / "table1.md").is_file() and (out / "ap_per_category.png").is_file()
    return results


def test_checkpoint_and_its_onnx_agree_within_005_points(sample_model, sample_root, tmp_path):
    pt = _eval_cli(sample_model["checkpoint"], sample_root, tmp_path / "pt")
    onnx = _eval_cli(sample_model["fp32"], sample_root, tmp_path / "onnx")
    # `auto` runs an ONNX file in OpenVINO on a CPU-only machine that has it (BF16 where the CPU has BF16
    # instructions), else in ONNX Runtime: within 0.05 points of the checkpoint in FP32, 0.2 in BF16 (its 8-bit
    # mantissa moves a score by about 1e-2, and an AP by as much when scores tie at a threshold).
    limit = 0.05 if onnx["extra"]["precision"] == "fp32" else 0.2
    assert abs(100 * (pt["mAP"] - onnx["mAP"])) <= limit, (pt["mAP"], onnx["mAP"], onnx["extra"]["precision"])
    assert pt["extra"]["precision"] == "fp32" and "PyTorch" in pt["extra"]["backend"]
    import importlib.util

    import torch

    openvino = importlib.util.find_spec("openvino") is not None and not torch.cuda.is_available()
    assert onnx["extra"]["precision"] in (("fp32", "bf16") if openvino else ("fp32",))
    assert ("OpenVINO" if openvino else "onnxruntime") in onnx["extra"]["backend"], onnx["extra"]
    assert onnx["extra"]["model"] == str(sample_model["fp32"]) and onnx["extra"]["persons"] > 0
    # A checkpoint's report shows where the model looked (paper Fig. 1); an ONNX file's cannot (no gradients).
    gallery = sorted((tmp_path / "pt" / "gallery").glob("*.png"))
    assert len(gallery) == 8 and len({p.name.split("-", 1)[1] for p in gallery}) == 8  # eight different images
    assert not (tmp_path / "onnx" / "gallery").exists()


@needs_modelopt
def test_fp16_and_both_int8_files_go_through_the_same_command(sample_model, sample_root, tmp_path):
    from emoedge.export.precision import to_fp16, to_int8

    calib = tmp_path / "calib"
    calib.mkdir()
    for image in sorted((sample_root / "emotic").rglob("*.jpg"))[:8]:
        shutil.copy(image, calib / image.name)
    source = sample_model["fp32"]
    files = {
        "fp16": to_fp16(source, tmp_path / "m-fp16.onnx").path,
        "int8 (TensorRT)": to_int8(source, tmp_path / "m-int8-trt.onnx", calib=calib).path,
        "int8 (CPU)": to_int8(source, tmp_path / "m-int8-cpu.onnx", calib=calib, target="cpu").path,
    }
    reference = evaluate_model(source, sample_root, workers=0, progress=False).m_ap
    for kind, path in files.items():
        results = _eval_cli(path, sample_root, tmp_path / path.stem)
        stored = kind.split()[0]
        # ONNX Runtime reports the file's precision; OpenVINO (`auto` on a CPU-only machine that has it) what it
        # computes in: an FP16 file at the CPU's precision (BF16 where it has BF16 instructions, else FP32).
        ran = (stored,) if "OpenVINO" not in results["extra"]["backend"] or stored != "fp16" else ("bf16", "fp32")
        assert results["extra"]["precision"] in ran, (kind, results["extra"])
        assert abs(results["mAP"] - reference) < 0.05, (kind, results["mAP"], reference)  # within 5 points


@pytest.mark.parametrize(
    ("workers", "message"),
    [(-2, "workers -2: expected an integer >= 0"), (1.5, "workers: expected int, got 1.5")],
)
def test_bad_workers_are_one_line_before_the_model_is_read(tmp_path, workers, message):
    with pytest.raises(EmoedgeError, match=f"^{re.escape(message)}$"):
        evaluate_model(tmp_path / "absent.pt", tmp_path, workers=workers)
