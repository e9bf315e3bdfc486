"""FP32 ONNX → FP16 mixed-precision or INT8 Q/DQ ONNX with NVIDIA Model Optimizer, measured against FP32 (SPEC §7).

Why the precision goes into the ONNX: TensorRT 11 builds strongly typed networks only (no FP16/INT8 builder flags,
no INT8 calibrators), so the types must be written into the graph before the build. Model Optimizer's AutoCast
keeps nodes whose reference values leave FP16's safe range (|x| > 512) or whose weights do not fit FP16 in FP32,
and keeps the graph's inputs and outputs FP32, so the runtime feeds and reads the same arrays as before. Its INT8
post-training quantization inserts Q/DQ pairs where TensorRT wants them (convolution and GEMM inputs, weights per
output channel), with activation scales calibrated on real frames: every calibration feed is one frame as `image`
and that frame's persons as `body` [N,3,h,w], so both inputs and the dynamic person axis are calibrated.

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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import card_of, example_inputs, load_onnx
from emoedge.fileio import atomic_write

log = logging.getLogger(__name__)

PRECISION_KEY = "emoedge.precision"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# x1, y1, x2, y2 as fractions of a plain image: the whole frame, a tall centre crop and two tall side crops, so
# the body branch sees person-shaped content at more than one scale, several persons per frame.
PLAIN_IMAGE_PERSONS = ((0.0, 0.0, 1.0, 1.0), (0.3, 0.1, 0.7, 0.9), (0.05, 0.2, 0.4, 1.0), (0.6, 0.2, 0.95, 1.0))
PARITY_FRAMES = 8  # real frames compared against FP32 (test split when given, else the calibration frames)
RANDOM_PERSONS = (1, 4, 16)  # person counts of the random inputs used when no real frame is at hand
REFERENCE_FRAMES = 8  # AutoCast's reference run: enough frames to see each tensor's range
HIGH_PRECISIONS = ("fp32", "fp16")
MODELOPT_MISSING = "NVIDIA Model Optimizer is not installed (pip install 'emoedge[export]': nvidia-modelopt[onnx])"

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
    calib: Path | None = None,
    data: Path | None = None,
    split: str = "val",
    max_images: int = 256,
    high_precision: str = "fp32",
    progress: bool = False,
) -> PrecisionResult:
    """INT8 Q/DQ ONNX with Model Optimizer's post-training quantization (entropy calibration on real frames).

    Calibration frames come from the image folder `calib`, else from `data`'s `split`; at most `max_images`.
    `high_precision` is the type of what stays unquantized: "fp32" (ONNX Runtime on CPUs; exact elsewhere) or
    "fp16" (Model Optimizer's default, faster in TensorRT's strongly typed builds).
    """
    model, card = _fp32_input(onnx_in)
    if high_precision not in HIGH_PRECISIONS:
        raise EmoedgeError(f"high precision {high_precision!r}: expected one of {list(HIGH_PRECISIONS)}")
    if max_images < 1:
        raise EmoedgeError(f"max_images {max_images}: expected at least 1 calibration image")
    if calib is None and data is None:
        raise EmoedgeError("INT8 calibration needs real inputs: an image folder (--calib) or a dataset (--data)")
    frames = folder_frames(calib, card, max_images) if calib else _first(dataset_frames(data, split, card), max_images)
    quantization = _modelopt("modelopt.onnx.quantization")
    with tempfile.TemporaryDirectory(prefix="emoedge-int8-") as tmp:
        source, target = _stage(onnx_in, Path(tmp)), Path(tmp) / "int8.onnx"
        with _quiet():
            quantization.quantize(
                str(source),
                "int8",
                calibration_data_reader=_reader(frames),
                calibration_method="entropy",
                calibration_eps=["cpu"],
                output_path=str(target),
                high_precision_dtype=high_precision,
                log_level="ERROR",
            )
        import onnx

        converted = onnx.load(str(target))
    return _finish(model, converted, "int8", onnx_in, out, data=data, calib_frames=frames, progress=progress)


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

    from emoedge.training import metrics

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
    from emoedge.data.dataset import read_image
    from emoedge.data.emotic import image_path
    from emoedge.data.transforms import build_transform
    from emoedge.training.evaluate import checked_records

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
    from emoedge.backends.onnxruntime import graph_precision

    model = load_onnx(onnx_in)
    card = card_of(model, onnx_in)
    stored = graph_precision(model)
    if stored != "fp32":
        raise EmoedgeError(f"ONNX model {onnx_in}: already {stored}; convert the FP32 file of `emoedge export onnx`")
    return model, card


def _modelopt(module: str):
    """Import a Model Optimizer module, turning its absence (or a missing piece of its [onnx] extra) into one line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmoedgeError(f"{MODELOPT_MISSING}; import failed: {exc}") from None


def _stage(onnx_in: Path, tmp: Path) -> Path:
    """A copy of the input in a private folder: Model Optimizer writes intermediate files beside its input."""
    source = tmp / "fp32.onnx"
    shutil.copyfile(onnx_in, source)
    return source


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Model Optimizer and ONNX Runtime's calibrator print progress bars and INFO lines; users get the summary."""
    from modelopt.onnx.logging_config import configure_logging

    configure_logging(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _reader(frames: list[Frame]):
    """An ONNX Runtime calibration reader over frames; Model Optimizer also asks for the first feed and rewinds."""
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
    progress: bool,
) -> PrecisionResult:
    """Carry the card over, check the graph, compare it with FP32, write it atomically, then measure both mAPs."""
    import onnx

    from emoedge.backends.onnxruntime import OnnxRuntimeBackend

    converted.producer_name, converted.producer_version = source.producer_name, source.producer_version
    del converted.metadata_props[:]
    props = {p.key: p.value for p in source.metadata_props}
    onnx.helper.set_model_props(converted, {**props, PRECISION_KEY: precision})
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
