"""FP32 ONNX → FP16 mixed-precision or INT8 Q/DQ ONNX, measured against FP32 and gated on accuracy (SPEC §7).

Why the precision goes into the ONNX: TensorRT 11 builds strongly typed networks only (no FP16/INT8 builder flags,
no INT8 calibrators), so the types must be written into the graph before the build. Model Optimizer's AutoCast
keeps nodes whose reference values leave FP16's safe range (|x| > 512) or whose weights do not fit FP16 in FP32,
and keeps the graph's inputs and outputs FP32, so the runtime feeds and reads the same arrays as before. Its INT8
post-training quantization inserts Q/DQ pairs where TensorRT wants them (convolution and GEMM inputs, weights per
output channel), with activation scales calibrated on real frames: every calibration feed is one frame as `image`
and that frame's persons as `body` [N,3,h,w], so both inputs and the dynamic person axis are calibrated.

That placement is TensorRT's: ONNX Runtime's CPU kernels cannot fuse it and run it slower than FP32. INT8 for CPUs
(`target="cpu"`) is ONNX Runtime's own static quantization of the same feeds, Q/DQ placed so that its CPU kernels
fuse them (u8 activations, s8 weights per output channel); it needs ONNX Runtime only, not Model Optimizer.

Why every conversion runs in a child process (after mmdeploy's tools/deploy.py): Model Optimizer patches
onnxruntime.quantization for the whole process and both libraries print progress bars and INFO lines; in a spawned
child, the patches die with it and its output goes nowhere, so the caller's process is left exactly as it was.

Both files also run in ONNX Runtime on any CPU, which is where their cost is measured: max |Δscore| against the
FP32 graph and, given a dataset, the validation-split mAP of both through the one evaluator, with the new file
refused past `max_map_drop` points (emoedge.export.gate). A folder of plain images (`calib`) has no person boxes:
each image is fed whole as `image` and as four crops as `body` (see PLAIN_IMAGE_PERSONS).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.card import ModelCard
from emoedge.data.frames import ImageFrames
from emoedge.errors import EmoedgeError
from emoedge.export.gate import GATE_SPLIT, MapGate, check_max_drop, map_gate, staged
from emoedge.export.onnx import example_inputs
from emoedge.fileio import atomic_write, output_file
from emoedge.formats.onnx import (
    INT8_TARGET_KEY,
    INT8_TARGETS,
    PRECISION_KEY,
    card_of,
    graph_precision,
    load_onnx,
)
from emoedge.settings import checked

log = logging.getLogger(__name__)

# What ONNX Runtime quantizes for its CPU kernels (it fuses their Q/DQ into QLinear kernels). Not MatMul: the only
# one is the fusion's small Softmax-weights product, where u8 costs accuracy (max |Δscore| 0.43 vs 0.005 on a
# random-weight model) and saves no time.
CPU_INT8_OPS = ("Conv", "Gemm", "Add", "MaxPool", "GlobalAveragePool")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# x1, y1, x2, y2 as fractions of a plain image: the whole frame, a tall centre crop and two tall side crops, so
# the body branch sees person-shaped content at more than one scale, several persons per frame.
PLAIN_IMAGE_PERSONS = ((0.0, 0.0, 1.0, 1.0), (0.3, 0.1, 0.7, 0.9), (0.05, 0.2, 0.4, 1.0), (0.6, 0.2, 0.95, 1.0))
PARITY_FRAMES = 8  # real frames compared against FP32 (val split when given, else the calibration frames)
RANDOM_PERSONS = (1, 4, 16)  # person counts of the random inputs used when no real frame is at hand
REFERENCE_FRAMES = 8  # AutoCast's reference run: enough frames to see each tensor's range
HIGH_PRECISIONS = ("fp32", "fp16")
MODELOPT_MISSING = "NVIDIA Model Optimizer is not installed (pip install 'emoedge[export]': nvidia-modelopt[onnx])"
ORT_MISSING = "ONNX Runtime is not installed (pip install 'emoedge[export]')"

Frame = tuple[np.ndarray, np.ndarray]  # image [1,3,H,W] and body [N,3,h,w], float32, preprocessed


@dataclass(frozen=True)
class PrecisionResult:
    """Where the graph went, its distance from the FP32 graph and, when a dataset was given, the val-mAP gate."""

    path: Path
    precision: str  # "fp16" or "int8"
    max_abs_diff: float  # of `scores`, ONNX Runtime CPU, over `compared_on`
    compared_on: str
    gate: MapGate | None = None

    @property
    def parity_line(self) -> str:
        return f"parity vs FP32 (ONNX Runtime CPU, {self.compared_on}): max |Δscore| = {self.max_abs_diff:.1e}"

    @property
    def map_line(self) -> str | None:
        return None if self.gate is None else self.gate.line


def to_fp16(
    onnx_in: Path, out: Path, *, data: Path | None = None, max_map_drop: float | None = None, progress: bool = False
) -> PrecisionResult:
    """FP16 mixed-precision ONNX with AutoCast: FP32 I/O, out-of-range nodes FP32; card kept, precision noted.

    AutoCast's reference run sees the first frames of `data`'s val split, or random normalised-range inputs. With
    `data`, the new file must lose at most `max_map_drop` val-mAP points (default 0.2) or it is not written.
    """
    model, card = _fp32_input(onnx_in)
    output_file(out, "FP16 output", (".onnx",))  # before the conversion's work, not after it
    _require("modelopt.onnx.autocast", MODELOPT_MISSING)
    reference = _first(dataset_frames(data, "val", card), REFERENCE_FRAMES) if data else _random_frames(card)
    with tempfile.TemporaryDirectory(prefix="emoedge-fp16-") as tmp:
        source, inputs, converted = (
            _stage(onnx_in, Path(tmp)),
            _save_frames(reference, Path(tmp) / "reference", _inputs(model)),
            Path(tmp) / "fp16.onnx",
        )
        _in_child("FP16 conversion (Model Optimizer AutoCast)", _autocast, source, inputs, converted)
        return _finish(model, converted, "fp16", onnx_in, out, data=data, calib_frames=[], max_map_drop=max_map_drop,
                       progress=progress)  # fmt: skip


def to_int8(
    onnx_in: Path,
    out: Path,
    *,
    target: str = "tensorrt",
    calib: Path | None = None,
    data: Path | None = None,
    split: str = "val",
    max_images: int = 256,
    high_precision: str = "fp32",
    max_map_drop: float | None = None,
    progress: bool = False,
) -> PrecisionResult:
    """INT8 Q/DQ ONNX calibrated on real frames, its Q/DQ placed for `target`'s runtime.

    `target` "tensorrt": Model Optimizer's post-training quantization (entropy calibration); "cpu": ONNX Runtime's
    quantize_static (min/max calibration), which its CPU execution provider runs faster than FP32.
    Calibration frames come from the image folder `calib`, else from `data`'s `split`; at most `max_images`.
    `high_precision` (TensorRT only) is the type of what stays unquantized: "fp32" (exact everywhere) or "fp16"
    (Model Optimizer's default, faster in TensorRT's strongly typed builds). With `data`, the new file must lose at
    most `max_map_drop` val-mAP points (default 1.0) or it is not written.
    """
    model, card = _fp32_input(onnx_in)
    if target not in INT8_TARGETS:
        raise EmoedgeError(f"INT8 target {target!r}: expected one of {list(INT8_TARGETS)}")
    if high_precision not in HIGH_PRECISIONS:
        raise EmoedgeError(f"high precision {high_precision!r}: expected one of {list(HIGH_PRECISIONS)}")
    if target == "cpu" and high_precision != "fp32":
        raise EmoedgeError(f"high precision {high_precision!r}: INT8 target 'cpu' keeps the rest FP32 ('fp32')")
    max_images = checked(int, max_images, "max_images", low=1)  # calibration images
    if calib is None and data is None:
        raise EmoedgeError("INT8 calibration needs real inputs: an image folder (--calib) or a dataset (--data)")
    output_file(out, "INT8 output", (".onnx",))  # before calibration's work, not after it
    if target == "cpu":
        _require("onnxruntime.quantization", ORT_MISSING)
    else:
        _require("modelopt.onnx.quantization", MODELOPT_MISSING)
    frames = folder_frames(calib, card, max_images) if calib else _first(dataset_frames(data, split, card), max_images)
    with tempfile.TemporaryDirectory(prefix="emoedge-int8-") as tmp:
        source, feeds, quantized = (
            _stage(onnx_in, Path(tmp)),
            _save_frames(frames, Path(tmp) / "calib", _inputs(model)),
            Path(tmp) / "int8.onnx",
        )
        if target == "cpu":
            _in_child("INT8 quantization (ONNX Runtime)", _ort_int8, source, feeds, quantized)
        else:
            _in_child("INT8 quantization (Model Optimizer)", _modelopt_int8, source, feeds, quantized, high_precision)
        return _finish(
            model, quantized, "int8", onnx_in, out, data=data, calib_frames=frames, max_map_drop=max_map_drop,
            progress=progress, props={INT8_TARGET_KEY: target},
        )  # fmt: skip


def dataset_frames(root: Path, split: str, card: ModelCard) -> Iterator[Frame]:
    """Each image of a split once, preprocessed as evaluation does, with all its persons as `body`."""
    frames = ImageFrames(Path(root), split, card)
    return ((item.image, item.body) for item in (frames[i] for i in range(len(frames))))


def folder_frames(folder: Path, card: ModelCard, limit: int) -> list[Frame]:
    """Up to `limit` images of a folder (sorted by name), each whole as `image` and as PLAIN_IMAGE_PERSONS crops."""
    from emoedge.data.dataset import read_image
    from emoedge.data.transforms import crop_box, normalize, resize

    folder = Path(folder)
    if not folder.is_dir():
        raise EmoedgeError(f"calibration folder {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise EmoedgeError(f"calibration folder {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    frames = []
    for path in files[:limit]:
        pixels = read_image(path)
        height, width = pixels.shape[:2]
        image = normalize(resize(pixels, card.image_size), card.mean, card.std)[None]
        crops = []
        for fx1, fy1, fx2, fy2 in PLAIN_IMAGE_PERSONS:
            x1, y1, x2, y2 = crop_box((fx1 * width, fy1 * height, fx2 * width, fy2 * height), width, height)
            crops.append(normalize(resize(pixels[y1:y2, x1:x2], card.body_size), card.mean, card.std))
        frames.append((image, np.stack(crops)))
    return frames


# ------------------------------------------------------------------------------------ in the child process


def _autocast(source: Path, reference: Path, out: Path) -> None:
    from modelopt.onnx.autocast import convert_to_mixed_precision

    converted = convert_to_mixed_precision(
        str(source), "fp16", keep_io_types=True, calibration_data=str(reference), providers=["cpu"]
    )
    import onnx

    onnx.save(converted, str(out))


def _modelopt_int8(source: Path, feeds: Path, out: Path, high_precision: str) -> None:
    """Model Optimizer's TensorRT-placed Q/DQ (its patches of onnxruntime.quantization die with the child)."""
    from modelopt.onnx.logging_config import configure_logging
    from modelopt.onnx.quantization import quantize

    configure_logging(logging.ERROR)
    quantize(
        str(source), "int8", calibration_data_reader=_reader(feeds), calibration_method="entropy",
        calibration_eps=["cpu"], output_path=str(out), high_precision_dtype=high_precision, log_level="ERROR",
    )  # fmt: skip


def _ort_int8(source: Path, feeds: Path, out: Path) -> None:
    """ONNX Runtime's static INT8 for its CPU kernels: u8 activations, s8 weights per output channel, Q/DQ format.

    quant_pre_process first (constant folding, shape inference), as ONNX Runtime advises before quantizing. Weights
    in 7 bits (`reduce_range`): on x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) ONNX Runtime's u8×s8 kernels
    add pairs of products in 16 bits, which saturate with 8-bit weights; measured on an AVX2 CPU with the sample
    model: max |Δscore| against FP32 7.7e-2 with 8-bit weights, 9.6e-3 with 7-bit ones (test mAP 88.05 and 88.31,
    FP32 88.26). On VNNI CPUs the file keeps one bit less of weight precision (not measured: no VNNI CPU here).
    """
    from onnxruntime import quantization
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out.with_name("prepared.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantization.quantize_static(
        str(prepared), str(out), _reader(feeds), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
        activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax, op_types_to_quantize=list(CPU_INT8_OPS),
        reduce_range=True,
    )  # fmt: skip


def _reader(folder: Path):  # -> onnxruntime.quantization.CalibrationDataReader
    """A calibration reader over the frames saved in `folder` (Model Optimizer also asks for the first and
    rewinds)."""
    from onnxruntime.quantization import CalibrationDataReader

    files = sorted(Path(folder).glob("*.npz"))

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            path = next(self.iterator, None)
            return None if path is None else _feed(path)

        def get_first(self) -> dict[str, np.ndarray]:
            return _feed(files[0])

        def rewind(self) -> None:
            self.iterator = iter(files)

    return Frames()


def _feed(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def _child_main(conn, step: str, target: Callable[..., None], args: tuple) -> None:
    """The child's entry: its output to /dev/null, `target(*args)`, then (ok, one-line message) to the parent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        target(*args)
        conn.send((True, ""))
    except EmoedgeError as exc:
        conn.send((False, str(exc)))
    except BaseException as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        conn.send((False, f"{step} failed: {type(exc).__name__}: {first}".rstrip(": ")))


# --------------------------------------------------------------------------------------- in this process


def _in_child(step: str, target: Callable[..., None], *args: object) -> None:
    """Run `target(*args)` in a spawned child process and wait; its failure is one EmoedgeError line. Ctrl-C (or
    any error here) terminates the child."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(send, step, target, args), name="emoedge-convert", daemon=True)
    child.start()
    send.close()
    try:
        while not receive.poll(0.2):
            if not child.is_alive() and not receive.poll(0):
                raise EmoedgeError(
                    f"{step}: the conversion process ended without a result (exit code {child.exitcode})"
                )
        ok, message = receive.recv()
    except BaseException:
        child.terminate()
        raise
    finally:
        child.join(10)
        receive.close()
    if not ok:
        raise EmoedgeError(message)


def _require(module: str, missing: str) -> None:
    """Check here, before the child starts, that an optional package is importable (honouring a None in
    sys.modules, which is how a blocked module is spelled), so that its absence is one line naming the extra."""
    parts = module.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    if any(name in sys.modules and sys.modules[name] is None for name in names):
        raise EmoedgeError(f"{missing}; import failed: {module} is not available")
    if importlib.util.find_spec(parts[0]) is None:
        raise EmoedgeError(f"{missing}; import failed: no module named {parts[0]!r}")


def _save_frames(frames: list[Frame], folder: Path, inputs: set[str]) -> Path:
    """Frames as numbered .npz files of the graph's feeds in `folder`, for the child process (and AutoCast)."""
    folder.mkdir()
    for i, (image, body) in enumerate(frames):
        np.savez(folder / f"{i:04d}.npz", **_feeds(image, body, inputs))
    return folder


def _inputs(model) -> set[str]:
    return {i.name for i in model.graph.input}


def _feeds(image: np.ndarray, body: np.ndarray, inputs: set[str]) -> dict[str, np.ndarray]:
    """One frame as the graph's feeds: with `frame` (every person in frame 0) where the graph has that input."""
    feeds = {"image": image, "body": body}
    if "frame" in inputs:
        feeds["frame"] = np.zeros(len(body), np.int64)
    return feeds


def _fp32_input(onnx_in: Path):  # -> (onnx.ModelProto, ModelCard)
    """The parsed FP32 emoedge graph, or one EmoedgeError line: not ONNX, not emoedge's, or already converted."""
    model = load_onnx(onnx_in)
    card = card_of(model, onnx_in)
    stored = graph_precision(model)
    if stored != "fp32":
        raise EmoedgeError(f"ONNX model {onnx_in}: already {stored}; convert the FP32 file of `emoedge export onnx`")
    return model, card


def _stage(onnx_in: Path, tmp: Path) -> Path:
    """A copy of the input in a private folder: Model Optimizer writes intermediate files beside its input."""
    source = tmp / "fp32.onnx"
    shutil.copyfile(onnx_in, source)
    return source


def _finish(
    source, converted_path: Path, precision: str, onnx_in: Path, out: Path, *, data: Path | None,
    calib_frames: list[Frame], max_map_drop: float | None, progress: bool, props: dict[str, str] | None = None,
) -> PrecisionResult:  # fmt: skip
    """Carry the card over (plus `props`), check the graph, compare it with FP32, then write it — with `data`,
    only once the val-mAP gate passed."""
    import onnx

    max_drop = check_max_drop(max_map_drop, precision)
    converted = onnx.load(str(converted_path))
    converted.producer_name, converted.producer_version = source.producer_name, source.producer_version
    del converted.metadata_props[:]
    kept = {p.key: p.value for p in source.metadata_props}
    onnx.helper.set_model_props(converted, {**kept, PRECISION_KEY: precision, **(props or {})})
    onnx.checker.check_model(converted)
    card = card_of(source, onnx_in)
    if data:
        frames, kind = _first(dataset_frames(data, GATE_SPLIT, card), PARITY_FRAMES), f"{GATE_SPLIT}-split frames"
    elif calib_frames:
        frames, kind = calib_frames[:PARITY_FRAMES], "calibration frames"
    else:
        frames, kind = _random_frames(card), "random inputs"
    persons = sorted({len(body) for _, body in frames})
    compared_on = f"{len(frames)} {kind}, N = {persons[0]}" + (f"…{persons[-1]}" if len(persons) > 1 else "")
    max_diff = _max_score_diff(source, converted, frames)
    gate = None
    with staged(Path(out)) as tmp:
        atomic_write(tmp, lambda path: path.write_bytes(converted.SerializeToString()))
        if data:
            gate = map_gate(onnx_in, tmp, data, max_drop=max_drop, new_device="cpu", new_name=precision.upper(),
                            progress=progress)  # fmt: skip
    log.info("%s written; %s", out, f"parity vs FP32: max |Δscore| = {max_diff:.1e}")
    return PrecisionResult(Path(out), precision, max_diff, compared_on, gate)


def _max_score_diff(reference, converted, frames: list[Frame]) -> float:
    """Max |Δscores| between two graphs in ONNX Runtime on the CPU (FP32 inputs: AutoCast keeps the I/O types)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [
        ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for m in (reference, converted)
    ]
    diff, inputs = 0.0, _inputs(reference)
    for image, body in frames:
        a, b = (s.run(["scores"], _feeds(image, body, inputs))[0] for s in sessions)
        diff = max(diff, float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()))
    return diff


def _random_frames(card: ModelCard) -> list[Frame]:
    """Normalised-range random frames with RANDOM_PERSONS persons, for when no real image is at hand."""
    return [tuple(t.numpy() for t in example_inputs(card, n, seed=100 + n)) for n in RANDOM_PERSONS]


def _first(items, count: int) -> list:
    """The first `count` items of an iterable, without reading the rest (a split's images are decoded lazily)."""
    out = []
    for item in items:
        if len(out) == count:
            break
        out.append(item)
    return out
