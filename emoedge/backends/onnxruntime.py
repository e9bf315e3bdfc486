"""ONNX Runtime backend: an emoedge ONNX file on the TensorRT, CUDA or CPU execution provider.

Why an optimisation profile for the TensorRT provider: N (persons) is dynamic, and without min/opt/max shapes the
provider rebuilds its engine whenever N exceeds every N seen so far; with them, and the engine and timing caches
on disk, the engine is built once per machine. The profile bounds N (PERSONS_PROFILE): the backend publishes them
as `min_persons`/`max_persons`, and base.Backend runs more persons in slices (a multi-stream tick of 4 × 9 persons
would otherwise fail inside TensorRT).

Why an engine cache prefix from the model's bytes: the provider names a cached engine after the graph's name, its
inputs and the ONNX Runtime/TensorRT versions, never after its weights (ONNX Runtime issues #6455, #32254), so a
retrained model of the same recipe would load the first model's engine: its scores, and no error. The prefix is a
digest of the serialized graph and the precision that runs; the timing cache, per GPU and not per model, stays
shared (its file name does not use the prefix).

Why precision rules per TensorRT version: with `trt_fp16_enable` or `trt_int8_enable` set the provider builds a
weakly typed network with those builder flags; with neither, a strongly typed one that keeps the graph's own types
(TensorRT 9 on; ONNX Runtime PR #19695; no provider option asks for strong typing). The rules follow emoedge's own
engine build (formats.tensorrt.STRONG_TYPING_FROM): before TensorRT 10.12 (JetPack 6 has 10.3) the FP16 flag lowers
an FP32 graph, and a Q/DQ graph gets INT8 where it quantizes and FP16 elsewhere, which weak typing needs the INT8
flag for; from 10.12, where weak typing is deprecated, and in 11, where it is gone and the flags do nothing, no
flags are set: the graph runs, and is reported, as stored, and FP16 needs an FP16 ONNX.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends.base import Backend, host_array
from emoedge.card import ModelCard
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.formats.onnx import card_of, graph_precision, load_onnx
from emoedge.formats.tensorrt import STRONG_TYPING_FROM, import_tensorrt, version_tuple

TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
MAX_THREADS = 8  # more intra-op threads do not speed up one frame's small convolutions; they only contend
PERSONS_PROFILE = (1, 4, 32)  # min/opt/max persons of the TensorRT provider's optimisation profile
FRAMES_PROFILE = (1, 1, 4)  # min/opt/max frames (streams) per call in that profile
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
PRECISIONS = ("auto", "fp32", "fp16", "int8")
NVINFER_SONAMES = ("libnvinfer.so.10", "libnvinfer.so.11")  # TensorRT's runtime, the majors emoedge supports
PRECISION_FLAGS = {"trt_int8_enable": "INT8", "trt_fp16_enable": "FP16"}  # the provider's builder-flag options
# Weakly typed TensorRT: (stored, requested) -> (precision that runs, provider flags); other pairs run as stored.
WEAK_TYPING = {
    ("fp32", "auto"): ("fp16", ("trt_fp16_enable",)),
    ("fp32", "fp16"): ("fp16", ("trt_fp16_enable",)),
    ("int8", "auto"): ("int8", ("trt_int8_enable", "trt_fp16_enable")),  # FP16 for the layers left unquantized
    ("int8", "int8"): ("int8", ("trt_int8_enable", "trt_fp16_enable")),
}


def default_cache_dir() -> Path:
    """Where the TensorRT provider keeps engines and timing caches (building one takes minutes)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emoedge" / "ort-tensorrt"


class OnnxRuntimeBackend(Backend):
    """One InferenceSession; the card comes from the file's metadata.

    `device`: "auto" (TensorRT, else CUDA, else CPU provider — whichever this onnxruntime build has), "cpu",
    "cuda[:K]" or "tensorrt[:K]". `precision` "auto" runs the graph as it is, except that the TensorRT provider
    on TensorRT before 10.12 builds FP16 engines from an FP32 graph; "fp32" keeps it FP32 there.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "auto",
        precision: str = "auto",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        model = load_onnx(path)
        self.card = card_of(model, path)
        # Files exported before the `frame` input take one frame per call (base.Backend runs more in groups).
        self.has_frame = "frame" in {i.name for i in model.graph.input}
        self.max_frames = None if self.has_frame else 1
        stored, graph = graph_precision(model), model.SerializeToString()
        available = ort.get_available_providers()
        provider, device_id, why = _choose_provider(device, available, gpu=device != "auto" or cuda_visible())
        trt = tensorrt_version() if provider == TENSORRT else None
        self.device = "cpu" if provider == CPU else f"cuda:{device_id}"
        self.precision, options = _provider_options(provider, device_id, precision, stored, path, trt)
        if provider == TENSORRT:
            cache = Path(cache_dir) if cache_dir else default_cache_dir()
            cache.mkdir(parents=True, exist_ok=True)
            prefix = engine_cache_prefix(graph, self.precision)
            options.update(tensorrt_options(self.card, has_frame=self.has_frame, cache_dir=cache, prefix=prefix))
            self.max_frames = FRAMES_PROFILE[-1] if self.has_frame else 1

        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's business
        self.threads = threads or min(len(os.sched_getaffinity(0)), MAX_THREADS)
        session_options.intra_op_num_threads = self.threads
        # ONNX Runtime gives a node the first listed provider that supports it: fall back TensorRT → CUDA → CPU.
        chain = {TENSORRT: (TENSORRT, CUDA), CUDA: (CUDA,), CPU: ()}[provider]
        providers: list[Any] = [
            (p, options if p == provider else {"device_id": str(device_id)}) for p in chain if p in available
        ] + [CPU]
        try:
            self.session = ort.InferenceSession(graph, session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, …)
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise EmoedgeError(f"ONNX model {path}: ONNX Runtime cannot load it ({reason})") from None
        running = self.session.get_providers()[0]
        if running != provider:  # onnxruntime-gpu falls back silently when CUDA/TensorRT libraries do not load
            if device != "auto":
                raise EmoedgeError(
                    f"device {device!r}: onnxruntime could not start {provider} (its CUDA/TensorRT libraries did "
                    "not load); use device 'cpu'"
                )
            provider, why = running, f"{provider} could not start"
            self.device = "cpu" if running == CPU else f"cuda:{device_id}"
            self.precision, _ = _provider_options(running, device_id, precision, stored, path)
        self.min_persons, self.max_persons = persons_bounds(running)
        self.input_types = {i.name: NUMPY_TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        note = {TENSORRT: tensorrt_note(trt, options), CPU: f"{self.threads} intra-op threads"}.get(running)
        self.reason = f"onnxruntime {provider} ({why}), {self.precision}" + (f", {note}" if note else "")

    @property
    def input_device(self) -> str:
        """Host memory whatever the provider: `session.run` takes numpy arrays and copies them to the device itself."""
        return "cpu"

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {
            "image": host_array(image, self.input_types["image"]),
            "body": host_array(body, self.input_types["body"]),
        }
        if self.has_frame:
            feeds["frame"] = frame
        results = self.session.run(self.outputs, feeds)
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.outputs, results)}


def cuda_visible() -> bool:
    """Whether a CUDA GPU is there: onnxruntime-gpu lists its CUDA and TensorRT providers on machines without one."""
    import torch

    return torch.cuda.is_available()


def engine_cache_prefix(graph: bytes, precision: str) -> str:
    """The TensorRT provider's `trt_engine_cache_prefix` for a serialized graph run in `precision`: its engines are
    found again only for these very bytes (weights included). Letters, digits and '_' only: it starts file names."""
    return f"emoedge_{hashlib.sha256(graph).hexdigest()[:16]}_{precision}"


def tensorrt_options(card: ModelCard, *, has_frame: bool, cache_dir: Path, prefix: str) -> dict[str, str]:
    """Engine caches under `prefix` (see engine_cache_prefix), the shared timing cache and the optimisation profile
    over F and N for the TensorRT provider."""
    image = "x".join(str(s) for s in (3, *card.image_size))
    body = "x".join(str(s) for s in (3, *card.body_size))
    frames = FRAMES_PROFILE if has_frame else (1, 1, 1)
    shapes = [
        f"image:{f}x{image},body:{n}x{body}" + (f",frame:{n}" if has_frame else "")
        for f, n in zip(frames, PERSONS_PROFILE)
    ]
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_engine_cache_prefix": prefix,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": shapes[0],
        "trt_profile_opt_shapes": shapes[1],
        "trt_profile_max_shapes": shapes[2],
    }


def persons_bounds(provider: str) -> tuple[int, int | None]:
    """(min, max) persons per model call: the TensorRT provider's profile bounds N; CPU and CUDA take any N."""
    return (PERSONS_PROFILE[0], PERSONS_PROFILE[-1]) if provider == TENSORRT else (1, None)


def tensorrt_version() -> str | None:
    """The TensorRT version the TensorRT provider will load, or None where it cannot be told.

    The `tensorrt` module's when it imports (importing it loads its libnvinfer, which the provider then shares),
    else libnvinfer's own `getInferLibVersion()`, found by the same library search as the provider's.
    """
    try:
        return str(import_tensorrt().__version__)
    except EmoedgeError:
        pass
    for soname in NVINFER_SONAMES:
        try:
            code = ctypes.CDLL(soname).getInferLibVersion()
        except (OSError, AttributeError):  # not installed, or a library without the function
            continue
        return infer_lib_version(int(code))
    return None


def infer_lib_version(code: int) -> str:
    """'MAJOR.MINOR.PATCH' from getInferLibVersion(), which TensorRT 10 and later encode as
    major * 10000 + minor * 100 + patch (NV_TENSORRT_VERSION in NvInferRuntimeBase.h)."""
    return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


def strongly_typed(tensorrt: str | None) -> bool:
    """Whether the TensorRT provider runs a graph in the precision it stores: TensorRT 10.12 and later, and a
    version that cannot be told (see _provider_options)."""
    return tensorrt is None or version_tuple(tensorrt) >= STRONG_TYPING_FROM


def tensorrt_note(tensorrt: str | None, options: dict[str, str]) -> str:
    """What `reason` says of the TensorRT provider: its TensorRT and the typing its `options` ask for."""
    flags = [PRECISION_FLAGS[name] for name in options if name in PRECISION_FLAGS]
    version = f"TensorRT {tensorrt}" if tensorrt else "TensorRT of unknown version (no tensorrt module or libnvinfer)"
    return f"{version}: " + (f"weakly typed, {'+'.join(flags)} flags" if flags else "strongly typed, as stored")


def _choose_provider(device: str, available: list[str], *, gpu: bool = True) -> tuple[str, int, str]:
    """(provider, device id, why) for a device string, checked against this onnxruntime build's providers.

    `gpu` False (no CUDA GPU visible) makes "auto" choose the CPU provider whatever the build offers.
    """
    wanted = parse_device(device)
    device_id = wanted.index or 0
    if wanted.kind == "auto":
        if not gpu:
            return CPU, 0, "no CUDA GPU visible"
        for provider in (TENSORRT, CUDA):
            if provider in available:
                return provider, device_id, "the fastest provider in this onnxruntime build"
        return CPU, 0, "no CUDA or TensorRT provider in this onnxruntime build"
    provider = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}[wanted.kind]
    if provider not in available:
        raise EmoedgeError(
            f"device {device!r}: this onnxruntime build has no {provider} (it has {', '.join(available)}); "
            "install onnxruntime-gpu for CUDA and TensorRT"
        )
    return provider, device_id, "device requested"


def _provider_options(
    provider: str, device_id: int, precision: str, stored: str, path: Any, tensorrt: str | None = None
) -> tuple[str, dict[str, str]]:
    """(precision that will run, provider options) for a graph that stores `stored` ('fp32', 'fp16', 'int8').

    Only the TensorRT provider on weakly typed TensorRT (`tensorrt` before 10.12) takes precision flags
    (WEAK_TYPING); everywhere else the graph runs as stored, without flags, so the TensorRT provider builds a
    strongly typed network. A TensorRT version that cannot be told (`tensorrt` None) gets those strongly typed
    rules: without flags every TensorRT from 9 on keeps the graph's types, so the precision reported is the one
    that runs; flags are documented only where weak typing exists, which an unknown version does not promise.
    """
    if precision not in PRECISIONS:
        raise EmoedgeError(f"precision {precision!r}: the onnxruntime backend takes 'auto', 'fp32', 'fp16' or 'int8'")
    options = {} if provider == CPU else {"device_id": str(device_id)}
    if provider == TENSORRT and not strongly_typed(tensorrt) and (stored, precision) in WEAK_TYPING:
        runs, flags = WEAK_TYPING[stored, precision]
        return runs, options | dict.fromkeys(flags, "True")
    if precision not in ("auto", stored):
        runner = f"{provider} on TensorRT {tensorrt or 'of unknown version'}" if provider == TENSORRT else provider
        raise EmoedgeError(
            f"precision {precision!r}: {path} is a {stored} graph and {runner} runs it as it is; make a "
            f"{precision} ONNX with `emoedge export precision`"
            + (" or use device 'tensorrt' for FP16" if precision == "fp16" and provider != TENSORRT else "")
        )
    return stored, options
