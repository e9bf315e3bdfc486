"""Inference backends behind one interface (`base.Backend`), one module per file format, imported only when used.

`load_model(path)` picks the backend from the file's suffix, or `triton` for a served model's URL
(grpc://HOST:PORT/NAME, http://HOST:PORT/NAME), or `openvino` for an OpenVINO IR folder; a missing optional
dependency (ONNX Runtime, OpenVINO, TensorRT, the Triton client) costs nothing until a model that needs it is loaded,
and then it is one EmoedgeError line saying what to install. An ONNX file goes to ONNX Runtime, except with
`device="openvino[:…]"` and, on a machine without a CUDA GPU, with `device="auto"` when OpenVINO is installed: on x86
CPUs OpenVINO runs the same file fastest (benchmarks/results/openvino_cpu.md); `device="cpu"` keeps ONNX Runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from emoedge.backends.base import Backend
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.formats import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, IR_SUFFIXES, ONNX_SUFFIXES
from emoedge.formats.openvino import OPENVINO_MISSING
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
    "openvino": (
        "emoedge.backends.openvino",
        "OpenVinoBackend",
        (*ONNX_SUFFIXES, *IR_SUFFIXES),
        "openvino",
        OPENVINO_MISSING,
    ),
    "triton": ("emoedge.backends.triton", "TritonBackend", (), "tritonclient", TRITON_MISSING),
}
GRAPHED = ("torch", "onnxruntime", "tensorrt")  # the backends that take `cuda_graphs` (see load_model)
IR_FOLDER = "(an OpenVINO IR folder)"  # how a folder shows where a suffix would
# suffix -> the backend that reads it by default (the first that reads it: .onnx is ONNX Runtime's; see load_model)
SUFFIXES: dict[str, str] = {}
for _name, _spec in BACKENDS.items():
    for _suffix in _spec[2]:
        SUFFIXES.setdefault(_suffix, _name)

__all__ = ["BACKENDS", "SUFFIXES", "Backend", "is_url", "load_model"]


def is_url(model: object) -> bool:
    """Whether `model` names a model on a Triton server (grpc:// or http://) rather than a file."""
    return isinstance(model, str) and model.startswith(("grpc://", "http://"))


def load_model(
    path: str | Path,
    *,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    cuda_graphs: str = "auto",
    compile: bool = False,
) -> Backend:
    """Load a checkpoint (.pt/.pth), ONNX (.onnx), TensorRT engine (.engine), OpenVINO IR (a folder holding
    model.xml + model.bin, or its .xml) or served model (a URL) for inference.

    `backend` "auto" follows the suffix (an ONNX file: see the module's docstring for when OpenVINO runs it);
    `device` and `precision` "auto" let the backend choose the fastest that is available, and its `reason` says
    what it chose and why. `cuda_graphs` says whether a model on CUDA replays captured CUDA graphs (checkpoints,
    ONNX Runtime, TensorRT engines; OpenVINO and Triton refuse a value other than "auto" in one line); `compile`
    hands a checkpoint to torch.compile (other files refuse it in one line).
    """
    if is_url(path):
        if backend not in ("auto", "triton"):
            raise EmoedgeError(f"model {path}: a URL is served by Triton; backend {backend!r} reads files")
        _refuse_options(path, "triton", cuda_graphs, compile)
        return _backend_class("triton", path)(str(path), device=device, precision=precision)
    path = Path(path)
    if not path.exists():
        raise EmoedgeError(f"model {path}: file not found")
    suffix = IR_FOLDER if path.is_dir() else path.suffix.lower()
    wanted = parse_device(device)
    if backend == "auto":
        if suffix == IR_FOLDER:
            backend = "openvino"
        elif suffix not in SUFFIXES:
            raise EmoedgeError(
                f"model {path}: unknown model file type {suffix or '(no suffix)'!r}; expected one of "
                f"{sorted(SUFFIXES)} or an OpenVINO IR folder"
            )
        else:
            backend = SUFFIXES[suffix]
        if backend == "onnxruntime" and (wanted.kind == "openvino" or (wanted.kind == "auto" and _openvino_here())):
            backend = "openvino"
    if backend not in BACKENDS:
        raise EmoedgeError(f"backend {backend!r}: unknown; expected 'auto' or one of {sorted(BACKENDS)}")
    suffixes = BACKENDS[backend][2]
    if suffix not in suffixes and not (backend == "openvino" and suffix == IR_FOLDER):
        reads = "/".join(suffixes) + " files" if suffixes else "grpc:// and http:// URLs"
        what = "a folder" if suffix == IR_FOLDER else repr(suffix or "this file")
        raise EmoedgeError(f"model {path}: backend {backend!r} reads {reads}, not {what}")
    if backend == "onnxruntime":  # before ONNX Runtime is imported: its providers do not include OpenVINO's devices
        parse_device(device, kinds=("auto", "cpu", "cuda", "tensorrt"), who="the onnxruntime backend")
    options = {"cuda_graphs": cuda_graphs} if backend in GRAPHED else {}
    if backend == "torch":
        options["compile"] = compile
    else:
        _refuse_options(path, backend, cuda_graphs, compile)
    return _backend_class(backend, path)(path, device=device, precision=precision, **options)


def _refuse_options(model: str | Path, backend: str, cuda_graphs: str, compile: bool) -> None:
    """One line where `backend` cannot do what `cuda_graphs` or `compile` ask: torch.compile compiles checkpoints;
    CUDA graphs are captured by PyTorch, ONNX Runtime and TensorRT, not by OpenVINO or a Triton server."""
    if compile:
        raise EmoedgeError(f"--compile applies to checkpoints run by PyTorch; {model} is run by {backend}")
    if cuda_graphs != "auto" and backend not in GRAPHED:
        raise EmoedgeError(
            f"--cuda-graphs {cuda_graphs}: {backend} runs {model}, and only {', '.join(GRAPHED)} capture CUDA graphs"
        )


def _openvino_here() -> bool:
    """Whether `device="auto"` runs ONNX files in OpenVINO: it is installed and no CUDA GPU is visible (there,
    ONNX Runtime's TensorRT and CUDA providers are faster)."""
    if importlib.util.find_spec("openvino") is None:
        return False
    import torch

    return not torch.cuda.is_available()


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
