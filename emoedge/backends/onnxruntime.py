"""ONNX Runtime backend: an emoedge ONNX file on the TensorRT, CUDA or CPU execution provider.

Why an optimisation profile for the TensorRT provider: N (persons) is dynamic, and without min/opt/max shapes the
provider rebuilds its engine whenever N exceeds every N seen so far; with them, and the engine and timing caches
on disk, the engine is built once per machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends.base import Backend, host_array
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.formats.onnx import card_of, graph_precision, load_onnx

TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
MAX_THREADS = 8  # more intra-op threads do not speed up one frame's small convolutions; they only contend
PERSONS_PROFILE = (1, 4, 32)  # min/opt/max persons of the TensorRT provider's optimisation profile
FRAMES_PROFILE = (1, 1, 4)  # min/opt/max frames (streams) per call in that profile
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def default_cache_dir() -> Path:
    """Where the TensorRT provider keeps engines and timing caches (building one takes minutes)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emoedge" / "ort-tensorrt"


class OnnxRuntimeBackend(Backend):
    """One InferenceSession; the card comes from the file's metadata.

    `device`: "auto" (TensorRT, else CUDA, else CPU provider — whichever this onnxruntime build has), "cpu",
    "cuda[:K]" or "tensorrt[:K]". `precision` "auto" runs the graph as it is, except that the TensorRT provider
    builds FP16 engines from an FP32 graph; "fp32" keeps it FP32 there.
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
        stored = graph_precision(model)
        available = ort.get_available_providers()
        provider, device_id, why = _choose_provider(device, available, gpu=device != "auto" or cuda_visible())
        self.device = "cpu" if provider == CPU else f"cuda:{device_id}"
        self.precision, options = _provider_options(provider, device_id, precision, stored, path)
        if provider == TENSORRT:
            options.update(self._profile(Path(cache_dir) if cache_dir else default_cache_dir()))
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
            self.session = ort.InferenceSession(model.SerializeToString(), session_options, providers=providers)
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
        self.input_types = {i.name: NUMPY_TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        threads_note = f", {self.threads} intra-op threads" if provider == CPU else ""
        self.reason = f"onnxruntime {provider} ({why}), {self.precision}{threads_note}"

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

    def _profile(self, cache_dir: Path) -> dict[str, str]:
        """Engine/timing caches and the optimisation profile over F and N for the TensorRT provider."""
        cache_dir.mkdir(parents=True, exist_ok=True)
        image = "x".join(str(s) for s in (3, *self.card.image_size))
        body = "x".join(str(s) for s in (3, *self.card.body_size))
        frames = FRAMES_PROFILE if self.has_frame else (1, 1, 1)
        shapes = [
            f"image:{f}x{image},body:{n}x{body}" + (f",frame:{n}" if self.has_frame else "")
            for f, n in zip(frames, PERSONS_PROFILE)
        ]
        return {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache_dir),
            "trt_profile_min_shapes": shapes[0],
            "trt_profile_opt_shapes": shapes[1],
            "trt_profile_max_shapes": shapes[2],
        }


def cuda_visible() -> bool:
    """Whether a CUDA GPU is there: onnxruntime-gpu lists its CUDA and TensorRT providers on machines without one."""
    import torch

    return torch.cuda.is_available()


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


def _provider_options(provider: str, device_id: int, precision: str, stored: str, path: Any) -> tuple[str, dict]:
    """(precision that will run, provider options): only the TensorRT provider can lower an FP32 graph's precision."""
    if precision not in ("auto", "fp32", "fp16", "int8"):
        raise EmoedgeError(f"precision {precision!r}: the onnxruntime backend takes 'auto', 'fp32', 'fp16' or 'int8'")
    if provider == CPU:
        options: dict[str, str] = {}
    else:
        options = {"device_id": str(device_id)}
    if provider == TENSORRT and stored == "fp32" and precision in ("auto", "fp16"):
        options["trt_fp16_enable"] = "True"
        return "fp16", options
    if precision not in ("auto", stored):
        raise EmoedgeError(
            f"precision {precision!r}: {path} is a {stored} graph and {provider} runs it as it is; make a "
            f"{precision} ONNX with `emoedge export precision`"
            + (" or use device 'tensorrt' for FP16" if precision == "fp16" else "")
        )
    return stored, options
