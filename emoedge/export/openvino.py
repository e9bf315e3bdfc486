"""emoedge ONNX → OpenVINO IR folder (model.xml + model.bin, the card in rt_info), optionally INT8 with NNCF.

Why an IR when OpenVINO reads the ONNX file itself: the IR loads faster (no ONNX frontend), can hold FP16 weights
(`half`: half the folder, and what Intel GPUs and NPUs compute in; on a CPU the weights are widened at load, so its
speed does not change) and NNCF's INT8 placement, which is OpenVINO's own: FakeQuantize where its CPU, GPU and NPU
kernels fuse them. INT8 is NNCF's post-training quantization on calibration frames read as the ONNX INT8 path reads
them (`emoedge.export.precision`: an image folder, or a dataset split), run in a child process as the other
conversions are (NNCF prints progress bars and patches nothing, but its output belongs nowhere in the caller's).

Each IR is checked against its source before it is kept: max |Δscore| of OpenVINO's FP32 run of both, and with a
dataset the validation-split mAP gate of every export step (emoedge.export.gate: the IR refused past
`max_map_drop` points, nothing written).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.errors import EmoedgeError
from emoedge.export.gate import GATE_SPLIT, MapGate, check_max_drop, map_gate
from emoedge.export.precision import (
    PARITY_FRAMES,
    Frame,
    _feed,
    _first,
    _in_child,
    _random_frames,
    _require,
    _save_frames,
    dataset_frames,
    folder_frames,
)
from emoedge.formats.onnx import card_of, graph_precision, load_onnx
from emoedge.formats.openvino import IR_FILE, OPENVINO_MISSING, core, describe
from emoedge.settings import checked

NNCF_MISSING = "NNCF is not installed (pip install 'emoedge[export]': nncf)"
TARGET_DEVICES = ("CPU", "GPU", "NPU", "ANY")  # NNCF's target devices: where the INT8 IR will run


@dataclass(frozen=True)
class OpenVinoResult:
    """The IR folder, what it stores, its distance from the source ONNX and, with a dataset, the val-mAP gate."""

    path: Path
    precision: str  # "fp32", "fp16" (weights) or "int8"
    max_abs_diff: float  # of `scores`, OpenVINO FP32 on the CPU, IR against the source ONNX
    compared_on: str
    gate: MapGate | None = None

    @property
    def parity_line(self) -> str:
        return (
            f"parity vs the source ONNX (OpenVINO CPU FP32, {self.compared_on}): max |Δscore| = {self.max_abs_diff:.1e}"
        )

    @property
    def map_line(self) -> str | None:
        return None if self.gate is None else self.gate.line


def export_openvino(
    onnx_in: Path,
    out: Path,
    *,
    half: bool = False,
    int8: bool = False,
    target_device: str = "CPU",
    calib: Path | None = None,
    data: Path | None = None,
    split: str = "val",
    max_images: int = 256,
    max_map_drop: float | None = None,
    progress: bool = False,
) -> OpenVinoResult:
    """Convert an emoedge ONNX file into the IR folder `out` (model.xml + model.bin), the card in its rt_info.

    `half`: FP16 weights. `int8`: NNCF post-training quantization of the FP32 ONNX for `target_device`, calibrated on
    the image folder `calib`, else on `data`'s `split` (at most `max_images` frames). With `data` the IR must lose
    at most `max_map_drop` val-mAP points against the ONNX (default: 0.2, INT8 1.0) or nothing is written.
    """
    onnx_in, out = Path(onnx_in), Path(out)
    _require("openvino", OPENVINO_MISSING)
    model = load_onnx(onnx_in)
    card = card_of(model, onnx_in)
    stored = graph_precision(model)
    if target_device not in TARGET_DEVICES:
        raise EmoedgeError(f"target device {target_device!r}: expected one of {list(TARGET_DEVICES)}")
    if int8 and stored != "fp32":
        raise EmoedgeError(f"ONNX model {onnx_in}: already {stored}; quantize the FP32 file of `emoedge export onnx`")
    if int8 and calib is None and data is None:
        raise EmoedgeError("INT8 calibration needs real inputs: an image folder (--calib) or a dataset (--data)")
    max_images = checked(int, max_images, "max_images", low=1)  # calibration images
    precision = "int8" if int8 or stored == "int8" else "fp16" if half or stored == "fp16" else "fp32"
    max_drop = check_max_drop(max_map_drop, precision)
    _check_out(out)
    if int8:
        _require("nncf", NNCF_MISSING)
        frames = (
            folder_frames(calib, card, max_images) if calib else _first(dataset_frames(data, split, card), max_images)
        )
    else:
        frames = []
    inputs = {i.name for i in model.graph.input}
    del model
    with tempfile.TemporaryDirectory(prefix="emoedge-openvino-") as tmp:
        converted = Path(tmp) / "ir" / IR_FILE
        if int8:
            feeds = _save_frames(frames, Path(tmp) / "calib", inputs)
            _in_child("INT8 quantization (NNCF)", _nncf_int8, onnx_in, feeds, converted, card.to_json(), half,
                      target_device)  # fmt: skip
        else:
            _convert(onnx_in, converted, card.to_json(), precision, half)
        if data:
            checks, kind = _first(dataset_frames(data, GATE_SPLIT, card), PARITY_FRAMES), f"{GATE_SPLIT}-split frames"
        elif frames:
            checks, kind = frames[:PARITY_FRAMES], "calibration frames"
        else:
            checks, kind = _random_frames(card), "random inputs"
        persons = sorted({len(body) for _, body in checks})
        compared_on = f"{len(checks)} {kind}, N = {persons[0]}" + (f"…{persons[-1]}" if len(persons) > 1 else "")
        max_diff = _max_score_diff(onnx_in, converted, checks, "frame" in inputs)
        gate = None
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # beside `out`: renamed onto it
        try:
            folder = staging / out.name
            shutil.copytree(converted.parent, folder)
            if data:
                gate = map_gate(onnx_in, folder, data, max_drop=max_drop, new_device="openvino",
                                new_name=f"OpenVINO {precision.upper()} IR", progress=progress)  # fmt: skip
            _clear(out)
            os.replace(folder, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return OpenVinoResult(out, precision, max_diff, compared_on, gate)


def _check_out(out: Path) -> None:
    """`out` must be a new folder, an empty one or an earlier IR folder (replaced); never a file or another folder."""
    if out.exists() and not out.is_dir():
        raise EmoedgeError(f"OpenVINO IR folder {out}: is a file; expected a folder name")
    if out.is_dir() and {p.name for p in out.iterdir()} - {IR_FILE, "model.bin"}:
        raise EmoedgeError(f"OpenVINO IR folder {out}: holds other files; choose a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise EmoedgeError(f"OpenVINO IR folder {out}: cannot write there")


def _clear(out: Path) -> None:
    """Remove an earlier IR in `out` (just before the new folder is renamed onto it, which needs it empty)."""
    if out.is_dir():
        for name in (IR_FILE, "model.bin"):
            (out / name).unlink(missing_ok=True)
        out.rmdir()


def _convert(onnx_in: Path, out_xml: Path, card_json: str, precision: str, half: bool) -> None:
    """ONNX → IR with the card in rt_info (OpenVINO's converter, in this process: it prints nothing)."""
    import openvino as ov

    from emoedge.card import ModelCard

    model = ov.convert_model(str(onnx_in))
    describe(model, ModelCard.from_json(card_json), precision)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out_xml), compress_to_fp16=half)


# ------------------------------------------------------------------------------------ in the child process


def _nncf_int8(onnx_in: Path, feeds: Path, out_xml: Path, card_json: str, half: bool, target_device: str) -> None:
    """NNCF's post-training INT8 quantization of the ONNX graph converted to OpenVINO, on the saved frames."""
    import logging

    import nncf
    import openvino as ov

    from emoedge.card import ModelCard

    nncf.set_log_level(logging.ERROR)
    files = sorted(Path(feeds).glob("*.npz"))
    model = ov.convert_model(str(onnx_in))
    quantized = nncf.quantize(
        model, nncf.Dataset(files, _feed), subset_size=len(files),
        target_device=getattr(nncf.TargetDevice, target_device),
    )  # fmt: skip
    describe(quantized, ModelCard.from_json(card_json), "int8")
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=half)


# --------------------------------------------------------------------------------------- in this process


def _max_score_diff(onnx_in: Path, ir: Path, frames: list[Frame], has_frame: bool) -> float:
    """Max |Δscores| between the source ONNX and the IR, both in OpenVINO FP32 on the CPU."""
    import openvino as ov
    import openvino.properties.hint as hints

    config = {hints.inference_precision: ov.Type.f32}
    requests = [core().compile_model(str(p), "CPU", config).create_infer_request() for p in (onnx_in, ir)]
    diff = 0.0
    for image, body in frames:
        feeds = {"image": image, "body": body}
        if has_frame:
            feeds["frame"] = np.zeros(len(body), np.int64)
        a, b = (np.asarray(r.infer(feeds)["scores"], np.float32) for r in requests)
        diff = max(diff, float(np.abs(a - b).max()))
    return diff
