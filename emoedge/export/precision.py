"""FP32 ONNX → FP16 mixed-precision or INT8 Q/DQ ONNX, measured against FP32 (SPEC §7).

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

Both files also run in ONNX Runtime on any CPU, which is where their cost is measured: max |Δscore| against the
FP32 graph and, given a dataset, the test-split mAP of both graphs. A folder of plain images (`calib`) has no
person boxes: each image is fed whole as `image` and as four crops as `body` (see PLAIN_IMAGE_PERSONS).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import example_inputs
from emoedge.fileio import atomic_write
from emoedge.formats.onnx import (
    INT8_TARGET_KEY,
    INT8_TARGETS,
    PRECISION_KEY,
    card_of,
    graph_precision,
    load_onnx,
)

log = logging.getLogger(__name__)

# What ONNX Runtime quantizes for its CPU kernels (it fuses their Q/DQ into QLinear kernels). Not MatMul: the only
# one is the fusion's small Softmax-weights product, where u8 costs accuracy (max |Δscore| 0.43 vs 0.005 on a
# random-weight model) and saves no time.
CPU_INT8_OPS = ("Conv", "Gemm", "Add", "MaxPool", "GlobalAveragePool")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# x1, y1, x2, y2 as fractions of a plain image: the whole frame, a tall centre crop and two tall side crops, so
# the body branch sees person-shaped content at more than one scale, several persons per frame.
PLAIN_IMAGE_PERSONS = ((0.0, 0.0, 1.0, 1.0), (0.3, 0.1, 0.7, 0.9), (0.05, 0.2, 0.4, 1.0), (0.6, 0.2, 0.95, 1.0))
PARITY_FRAMES = 8  # real frames compared against FP32 (test split when given, else the calibration frames)
RANDOM_PERSONS = (1, 4, 16)  # person counts of the random inputs used when no real frame is at hand
REFERENCE_FRAMES = 8  # AutoCast's reference run: enough frames to see each tensor's range
HIGH_PRECISIONS = ("fp32", "fp16")
MODELOPT_MISSING = "NVIDIA Model Optimizer is not installed (pip install 'emoedge[export]': nvidia-modelopt[onnx])"
ORT_MISSING = "ONNX Runtime is not installed (pip install 'emoedge[export]')"

Frame = tuple[np.ndarray, np.ndarray]  # image [1,3,H,W] and body [N,3,h,w], float32, preprocessed


@dataclass(frozen=True)
class PrecisionResult:
    """Where the graph went, its distance from the FP32 graph and, when a dataset was given, both test mAPs."""

    path: Path
    precision: str  # "fp16" or "int8"
    max_abs_diff: float  # of `scores`, ONNX Runtime CPU, over `compared_on`
    compared_on: str
    map_fp32: float | None = None
    map_new: float | None = None

    @property
    def parity_line(self) -> str:
        return f"parity vs FP32 (ONNX Runtime CPU, {self.compared_on}): max |Δscore| = {self.max_abs_diff:.1e}"

    @property
    def map_line(self) -> str | None:
        if self.map_fp32 is None or self.map_new is None:
            return None
        change = 100 * (self.map_new - self.map_fp32)
        new = f"{self.precision.upper()} {100 * self.map_new:.2f}"
        return f"test mAP: FP32 {100 * self.map_fp32:.2f}, {new} ({change:+.2f} pt)"


def to_fp16(onnx_in: Path, out: Path, *, data: Path | None = None, progress: bool = False) -> PrecisionResult:
    """FP16 mixed-precision ONNX with AutoCast: FP32 I/O, out-of-range nodes FP32; card kept, precision noted.

    AutoCast's reference run sees the first frames of `data`'s val split, or random normalised-range inputs.
    """
    model, card = _fp32_input(onnx_in)
    autocast = _modelopt("modelopt.onnx.autocast")
    reference = _first(dataset_frames(data, "val", card), REFERENCE_FRAMES) if data else _random_frames(card)
    with tempfile.TemporaryDirectory(prefix="emoedge-fp16-") as tmp:
        source, inputs = _stage(onnx_in, Path(tmp)), Path(tmp) / "reference"
        inputs.mkdir()
        for i, (image, body) in enumerate(reference):
            np.savez(inputs / f"{i:04d}.npz", image=image, body=body)
        with _quiet():
            converted = autocast.convert_to_mixed_precision(
                str(source), "fp16", keep_io_types=True, calibration_data=str(inputs), providers=["cpu"]
            )
    return _finish(model, converted, "fp16", onnx_in, out, data=data, calib_frames=[], progress=progress)


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
    progress: bool = False,
) -> PrecisionResult:
    """INT8 Q/DQ ONNX calibrated on real frames, its Q/DQ placed for `target`'s runtime.

    `target` "tensorrt": Model Optimizer's post-training quantization (entropy calibration); "cpu": ONNX Runtime's
    quantize_static (min/max calibration), which its CPU execution provider runs faster than FP32.
    Calibration frames come from the image folder `calib`, else from `data`'s `split`; at most `max_images`.
    `high_precision` (TensorRT only) is the type of what stays unquantized: "fp32" (exact everywhere) or "fp16"
    (Model Optimizer's default, faster in TensorRT's strongly typed builds).
    """
    model, card = _fp32_input(onnx_in)
    if target not in INT8_TARGETS:
        raise EmoedgeError(f"INT8 target {target!r}: expected one of {list(INT8_TARGETS)}")
    if high_precision not in HIGH_PRECISIONS:
        raise EmoedgeError(f"high precision {high_precision!r}: expected one of {list(HIGH_PRECISIONS)}")
    if target == "cpu" and high_precision != "fp32":
        raise EmoedgeError(f"high precision {high_precision!r}: INT8 target 'cpu' keeps the rest FP32 ('fp32')")
    if max_images < 1:
        raise EmoedgeError(f"max_images {max_images}: expected at least 1 calibration image")
    if calib is None and data is None:
        raise EmoedgeError("INT8 calibration needs real inputs: an image folder (--calib) or a dataset (--data)")
    frames = folder_frames(calib, card, max_images) if calib else _first(dataset_frames(data, split, card), max_images)
    with tempfile.TemporaryDirectory(prefix="emoedge-int8-") as tmp:
        source, quantized = _stage(onnx_in, Path(tmp)), Path(tmp) / "int8.onnx"
        if target == "cpu":
            _ort_int8(source, quantized, frames)
        else:
            _modelopt_int8(source, quantized, frames, high_precision)
        import onnx

        converted = onnx.load(str(quantized))
    return _finish(
        model, converted, "int8", onnx_in, out, data=data, calib_frames=frames, progress=progress,
        props={INT8_TARGET_KEY: target},
    )


def _modelopt_int8(source: Path, quantized: Path, frames: list[Frame], high_precision: str) -> None:
    """Model Optimizer's TensorRT-placed Q/DQ, leaving onnxruntime.quantization unpatched after it."""
    quantization = _modelopt("modelopt.onnx.quantization")
    with _quiet(), _ort_quantization_kept():
        quantization.quantize(
            str(source),
            "int8",
            calibration_data_reader=_reader(frames),
            calibration_method="entropy",
            calibration_eps=["cpu"],
            output_path=str(quantized),
            high_precision_dtype=high_precision,
            log_level="ERROR",
        )


def _ort_int8(source: Path, quantized: Path, frames: list[Frame]) -> None:
    """ONNX Runtime's static INT8 for its CPU kernels: u8 activations, s8 weights per output channel, Q/DQ format.

    quant_pre_process first (constant folding, shape inference), as ONNX Runtime advises before quantizing.
    """
    quantization = _optional("onnxruntime.quantization", ORT_MISSING)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = quantized.with_name("prepared.onnx")
    with _quiet():
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_static(
            str(prepared),
            str(quantized),
            _reader(frames),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            op_types_to_quantize=list(CPU_INT8_OPS),
        )


def dataset_frames(root: Path, split: str, card: ModelCard) -> Iterator[Frame]:
    """Each image of a split once, preprocessed as evaluation does, with all its persons as `body`."""
    for frame, _ in _labelled_frames(root, split, card):
        yield frame


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


def split_maps(models: list, root: Path, split: str = "test", *, progress: bool = False) -> list[float]:
    """mAP of each loaded backend (`emoedge.backends.load_model`, one model's variants) over a split.

    Each image is decoded and preprocessed once and given to every backend in one `infer` call with all its persons.
    """
    from tqdm import tqdm

    from emoedge.evaluation import metrics

    scores: list[list[np.ndarray]] = [[] for _ in models]
    labels = []
    frames = _labelled_frames(root, split, models[0].card)
    for (image, body), truth in tqdm(frames, desc=f"mAP {split}", leave=False, disable=not progress):
        for model, out in zip(models, scores):
            out.append(model.infer(image, body)["scores"])
        labels.append(truth)
    truth = np.concatenate(labels)
    return [metrics.mean_ap(metrics.average_precisions(np.concatenate(s), truth)) for s in scores]


def _labelled_frames(root: Path, split: str, card: ModelCard) -> Iterator[tuple[Frame, np.ndarray]]:
    """(frame, labels [N,26]) per image of a split, persons in annotation order; decoded lazily."""
    from emoedge.data.dataset import checked_records, read_image
    from emoedge.data.emotic import image_path
    from emoedge.data.transforms import build_transform

    by_image: dict[Path, list] = {}
    for record in checked_records(Path(root), split):
        by_image.setdefault(image_path(root, record), []).append(record)
    transform = build_transform(False, card.image_size, card.body_size, card.mean, card.std)
    for path, persons in by_image.items():
        pixels = read_image(path)
        pairs = [transform(pixels, person.bbox) for person in persons]
        body = np.stack([crop.numpy() for _, crop in pairs])
        yield (pairs[0][0].numpy()[None], body), np.stack([person.multi_hot() for person in persons])


def _fp32_input(onnx_in: Path):  # -> (onnx.ModelProto, ModelCard)
    """The parsed FP32 emoedge graph, or one EmoedgeError line: not ONNX, not emoedge's, or already converted."""
    model = load_onnx(onnx_in)
    card = card_of(model, onnx_in)
    stored = graph_precision(model)
    if stored != "fp32":
        raise EmoedgeError(f"ONNX model {onnx_in}: already {stored}; convert the FP32 file of `emoedge export onnx`")
    return model, card


def _modelopt(module: str):
    """A Model Optimizer module, its logging turned down to errors (users get the summary)."""
    imported = _optional(module, MODELOPT_MISSING)
    from modelopt.onnx.logging_config import configure_logging

    configure_logging(logging.ERROR)
    return imported


def _optional(module: str, missing: str):
    """Import an optional dependency, turning its absence (or a missing piece of an extra) into one line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmoedgeError(f"{missing}; import failed: {exc}") from None


def _stage(onnx_in: Path, tmp: Path) -> Path:
    """A copy of the input in a private folder: Model Optimizer writes intermediate files beside its input."""
    source = tmp / "fp32.onnx"
    shutil.copyfile(onnx_in, source)
    return source


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Model Optimizer and ONNX Runtime's calibrator print progress bars and INFO lines; users get the summary."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@contextlib.contextmanager
def _ort_quantization_kept() -> Iterator[None]:
    """Undo, on exit, what Model Optimizer patches in onnxruntime.quantization for the whole process.

    Why: its quantize() replaces calibrator and quantizer methods and edits the op registries for TensorRT placement
    (e.g. it calibrates only the node names it passes in), which breaks a later plain quantize_static (target
    "cpu") in the same process. Module attributes, the attributes of the package's classes and its module-level
    dicts (the registries) are saved before and restored after.
    """
    import onnxruntime.quantization  # noqa: F401  (loads the submodules that get patched)

    modules = [m for name, m in list(sys.modules.items()) if name.startswith("onnxruntime.quantization")]
    classes = [
        v for m in modules for v in vars(m).values()
        if isinstance(v, type) and v.__module__.startswith("onnxruntime.quantization")
    ]
    saved = [(owner, dict(vars(owner))) for owner in dict.fromkeys([*modules, *classes])]
    registries = [
        (v, dict(v)) for m in modules for k, v in vars(m).items() if isinstance(v, dict) and not k.startswith("__")
    ]
    try:
        yield
    finally:
        for owner, attributes in saved:
            for name in set(vars(owner)) - set(attributes):
                delattr(owner, name)
            for name, value in attributes.items():
                if vars(owner).get(name) is not value:
                    setattr(owner, name, value)
        for registry, items in registries:
            if registry != items:
                registry.clear()
                registry.update(items)


def _reader(frames: list[Frame]):
    """An ONNX Runtime calibration reader over frames, for both targets (Model Optimizer also asks for the first feed
    and rewinds)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = [{"image": image, "body": body} for image, body in frames]
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.iterator, None)

        def get_first(self) -> dict[str, np.ndarray]:
            return self.feeds[0]

        def rewind(self) -> None:
            self.iterator = iter(self.feeds)

    return Frames()


def _finish(
    source, converted, precision: str, onnx_in: Path, out: Path, *, data: Path | None, calib_frames: list[Frame],
    progress: bool, props: dict[str, str] | None = None,
) -> PrecisionResult:
    """Carry the card over (plus `props`), check the graph, compare it with FP32, write it, then measure both mAPs."""
    import onnx

    from emoedge.backends.onnxruntime import OnnxRuntimeBackend

    converted.producer_name, converted.producer_version = source.producer_name, source.producer_version
    del converted.metadata_props[:]
    kept = {p.key: p.value for p in source.metadata_props}
    onnx.helper.set_model_props(converted, {**kept, PRECISION_KEY: precision, **(props or {})})
    onnx.checker.check_model(converted)
    card = card_of(source, onnx_in)
    if data:
        frames, kind = _first(dataset_frames(data, "test", card), PARITY_FRAMES), "test-split frames"
    elif calib_frames:
        frames, kind = calib_frames[:PARITY_FRAMES], "calibration frames"
    else:
        frames, kind = _random_frames(card), "random inputs"
    persons = sorted({len(body) for _, body in frames})
    compared_on = f"{len(frames)} {kind}, N = {persons[0]}" + (f"…{persons[-1]}" if len(persons) > 1 else "")
    max_diff = _max_score_diff(source, converted, frames)
    atomic_write(out, lambda tmp: tmp.write_bytes(converted.SerializeToString()))
    log.info("%s written; %s", out, f"parity vs FP32: max |Δscore| = {max_diff:.1e}")
    maps: list[float | None] = [None, None]
    if data:
        backends = [OnnxRuntimeBackend(path, device="cpu") for path in (onnx_in, out)]
        maps = split_maps(backends, data, "test", progress=progress)
    return PrecisionResult(Path(out), precision, max_diff, compared_on, *maps)


def _max_score_diff(reference, converted, frames: list[Frame]) -> float:
    """Max |Δscores| between two graphs in ONNX Runtime on the CPU (FP32 inputs: AutoCast keeps the I/O types)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [
        ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for m in (reference, converted)
    ]
    diff = 0.0
    for image, body in frames:
        a, b = (s.run(["scores"], {"image": image, "body": body})[0] for s in sessions)
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
