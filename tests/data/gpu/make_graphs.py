"""Writes the FP16 and INT8 (TensorRT Q/DQ) ONNX files beside this script, for GPU machines without Model Optimizer.

Why shipped files: Model Optimizer (FP16 AutoCast, INT8 Q/DQ) is not in the JetPack 6 set, so a Jetson cannot make
these graphs; the GPU tests take them from here when Model Optimizer is absent or broken there. The model is tiny
(random weights, two tiny branches, a small attention head), and the INT8 file keeps what it does not quantize in
FP16 (Model Optimizer's own default) rather than emoedge's default FP32, which halves it: about 350 KiB each.

Run on an x86 machine with the `export` extra:  python tests/data/gpu/make_graphs.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 0
# The sample recipe's sizes with the smallest network that still has a context branch (`place`: the frame gather).
MODEL = {"branches": ["body", "place"], "attention_hidden": 16, "vad": True}
CALIBRATION_IMAGES = 16


def make(out: Path = HERE) -> dict[str, Path]:
    """Both graphs from one random checkpoint, through emoedge's public export functions."""
    from emoedge.bench.models import random_checkpoint
    from emoedge.data.sample import write_sample
    from emoedge.export.onnx import export_onnx
    from emoedge.export.precision import to_fp16, to_int8

    with tempfile.TemporaryDirectory(prefix="emoedge-gpu-data-") as tmp:
        work = Path(tmp)
        checkpoint = random_checkpoint(work / "tiny.pt", "sample", seed=SEED, **MODEL)
        fp32 = export_onnx(checkpoint, work / "tiny-fp32.onnx").path
        calib = work / "calib"
        calib.mkdir()
        for image in sorted((write_sample(work / "sample") / "emotic").rglob("*.jpg"))[:CALIBRATION_IMAGES]:
            shutil.copy(image, calib / image.name)
        return {
            "fp16": to_fp16(fp32, out / "tiny-fp16.onnx").path,
            "int8": to_int8(
                fp32, out / "tiny-int8.onnx", calib=calib, max_images=CALIBRATION_IMAGES, high_precision="fp16"
            ).path,
        }


if __name__ == "__main__":
    for precision, path in make(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE).items():
        print(f"{precision}: {path} ({path.stat().st_size / 1024:.0f} KiB)")
