"""Inference backends behind one interface (`base.Backend`), one module per file format, imported only when used.

`load_model(path)` picks the backend from the file's suffix; a missing optional dependency (ONNX Runtime, TensorRT)
costs nothing until a file that needs it is loaded, and then it is one EmoedgeError line saying what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from emoedge.backends.base import Backend
from emoedge.errors import EmoedgeError
from emoedge.formats import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, ONNX_SUFFIXES

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
}
SUFFIXES: dict[str, str] = {suffix: name for name, spec in BACKENDS.items() for suffix in spec[2]}

__all__ = ["BACKENDS", "SUFFIXES", "Backend", "load_model"]


def load_model(path: str | Path, *, backend: str = "auto", device: str = "auto", precision: str = "auto") -> Backend:
    """Load a checkpoint (.pt/.pth), ONNX (.onnx) or TensorRT engine (.engine) for inference.

    `backend` "auto" follows the suffix; `device` and `precision` "auto" let the backend choose the fastest that
    is available, and its `reason` says what it chose and why.
    """
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
    module_name, class_name, suffixes, package, missing = BACKENDS[backend]
    if suffix not in suffixes:
        raise EmoedgeError(
            f"model {path}: backend {backend!r} reads {'/'.join(suffixes)} files, not {suffix or 'this file'!r}"
        )
    if importlib.util.find_spec(package) is None:
        raise EmoedgeError(f"model {path}: {missing}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # the backend module itself (TensorRT's ships separately) or its dependency
        if exc.name not in (module_name, package):
            raise
        raise EmoedgeError(f"model {path}: {missing}") from None
    return getattr(module, class_name)(path, device=device, precision=precision)
