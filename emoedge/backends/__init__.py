"""Inference backends behind one interface (`base.Backend`), one module per file format, imported only when used.

`load_model(path)` picks the backend from the file's suffix, or `triton` for a served model's URL
(grpc://HOST:PORT/NAME, http://HOST:PORT/NAME); a missing optional dependency (ONNX Runtime, TensorRT, the Triton
client) costs nothing until a model that needs it is loaded, and then it is one EmoedgeError line saying what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from emoedge.backends.base import Backend
from emoedge.errors import EmoedgeError
from emoedge.formats import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, ONNX_SUFFIXES
from emoedge.formats.triton import TRITON_MISSING

# backend name -> (module, class, the suffixes it reads, the Python package it needs, what to tell users)
BACKENDS: dict[str, tuple[str, str, tuple[str, ...], str, str]] = {
    "torch": ("emoedge.backends.torch", "TorchBackend", CHECKPOINT_SUFFIXES, "torch", "PyTorch is not installed"),
    "onnxruntime": (
        "emoedge.backends.onnxruntime",
        "OnnxRuntimeBackend",
        ONNX_SUFFIXES,
        "onnxruntime",
        "ONNX Runtime is not installed (pip install 'emoedge[runtime]'; on a Jetson, NVIDIA's onnxruntime-gpu wheel)",
    ),
    "tensorrt": (
        "emoedge.backends.tensorrt",
        "TensorRTBackend",
        ENGINE_SUFFIXES,
        "tensorrt",
        "TensorRT is not installed (pip install 'emoedge[tensorrt]' on a machine with an NVIDIA GPU)",
    ),
    "triton": ("emoedge.backends.triton", "TritonBackend", (), "tritonclient", TRITON_MISSING),
}
SUFFIXES: dict[str, str] = {suffix: name for name, spec in BACKENDS.items() for suffix in spec[2]}

__all__ = ["BACKENDS", "SUFFIXES", "Backend", "is_url", "load_model"]


def is_url(model: object) -> bool:
    """Whether `model` names a model on a Triton server (grpc:// or http://) rather than a file."""
    return isinstance(model, str) and model.startswith(("grpc://", "http://"))


def load_model(path: str | Path, *, backend: str = "auto", device: str = "auto", precision: str = "auto") -> Backend:
    """Load a checkpoint (.pt/.pth), ONNX (.onnx), TensorRT engine (.engine) or served model (a URL) for inference.

    `backend` "auto" follows the suffix; `device` and `precision` "auto" let the backend choose the fastest that
    is available, and its `reason` says what it chose and why.
    """
    if is_url(path):
        if backend not in ("auto", "triton"):
            raise EmoedgeError(f"model {path}: a URL is served by Triton; backend {backend!r} reads files")
        return _backend_class("triton", path)(str(path), device=device, precision=precision)
    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"model {path}: file not found")
    suffix = path.suffix.lower()
    if backend == "auto":
        if suffix not in SUFFIXES:
            raise EmoedgeError(
                f"model {path}: unknown model file type {suffix or '(no suffix)'!r}; expected one of {sorted(SUFFIXES)}"
            )
        backend = SUFFIXES[suffix]
    if backend not in BACKENDS:
        raise EmoedgeError(f"backend {backend!r}: unknown; expected 'auto' or one of {sorted(BACKENDS)}")
    suffixes = BACKENDS[backend][2]
    if suffix not in suffixes:
        reads = "/".join(suffixes) + " files" if suffixes else "grpc:// and http:// URLs"
        raise EmoedgeError(f"model {path}: backend {backend!r} reads {reads}, not {suffix or 'this file'!r}")
    return _backend_class(backend, path)(path, device=device, precision=precision)


def _backend_class(backend: str, model: str | Path) -> type[Backend]:
    """The backend's class, imported now; a missing package is one line saying what to install."""
    module_name, class_name, _, package, missing = BACKENDS[backend]
    if importlib.util.find_spec(package) is None:
        raise EmoedgeError(f"model {model}: {missing}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # the backend module itself (TensorRT's ships separately) or its dependency
        if exc.name not in (module_name, package):
            raise
        raise EmoedgeError(f"model {model}: {missing}") from None
    return getattr(module, class_name)
