"""Importing TensorRT and the rules of its versions, kept apart so that nothing else imports `tensorrt` directly.

Why two build modes: TensorRT 11 builds strongly typed networks only (BuilderFlag.FP16/INT8 and the calibrators are
gone), so the precision must already be in the ONNX; JetPack 6 ships TensorRT 10.3, where weak typing with the
FP16/INT8 builder flags still works. Weak typing is deprecated from 10.12, so from there on the strongly typed build
is used, before it the weak one — chosen by `tensorrt.__version__`.
"""

from __future__ import annotations

import re
import warnings

from emoedge.errors import EmoedgeError

MIN_TENSORRT = (10, 3)  # JetPack 6; name-based I/O and execute_async_v3 everywhere
STRONG_TYPING_FROM = (10, 12)  # weak typing deprecated here, removed in 11
INSTALL_HINT = (
    "TensorRT is not installed: `pip install tensorrt` from NVIDIA's index (or `pip install 'emoedge[tensorrt]'`), "
    "or on a Jetson use JetPack's python3-libnvinfer"
)


def import_tensorrt():  # -> the tensorrt module
    """Import TensorRT, or one EmoedgeError line saying how to install it."""
    try:
        import tensorrt
    except ModuleNotFoundError as exc:
        if exc.name != "tensorrt":
            raise EmoedgeError(f"TensorRT is installed but does not load (missing {exc.name})") from None
        raise EmoedgeError(INSTALL_HINT) from None
    except (ImportError, OSError) as exc:  # e.g. libnvinfer.so not found
        raise EmoedgeError(f"TensorRT is installed but does not load ({str(exc).splitlines()[0][:160]})") from None
    return tensorrt


def strongly_typed_build(version: str) -> bool:
    """Whether this TensorRT version builds strongly typed (10.12+, 11); older than 10.3 is an EmoedgeError."""
    parsed = version_tuple(version)
    if parsed < MIN_TENSORRT:
        raise EmoedgeError(f"TensorRT {version} is too old: emoedge needs TensorRT 10.3 or newer (JetPack 6)")
    return parsed >= STRONG_TYPING_FROM


def cuda_gpu(index: int | None = None) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of a CUDA GPU as PyTorch sees it (default: the current one)."""
    import torch

    if not torch.cuda.is_available():
        raise EmoedgeError(
            "no CUDA GPU visible (torch.cuda.is_available() is False): TensorRT builds and runs engines on the "
            "NVIDIA GPU they are for"
        )
    index = torch.cuda.current_device() if index is None else index
    if not 0 <= index < torch.cuda.device_count():
        raise EmoedgeError(f"device cuda:{index}: only {torch.cuda.device_count()} CUDA GPU(s) visible")
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), (int(major), int(minor))


def tensorrt_logger(trt):  # -> trt.ILogger subclass instance
    """A TensorRT logger that keeps errors for the one-line message and turns warnings into Python warnings."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg: str) -> None:  # noqa: ANN001 (trt.ILogger.Severity)
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(" ".join(msg.split()))
            elif severity == trt.ILogger.Severity.WARNING:
                warnings.warn(f"TensorRT: {' '.join(msg.split())}", stacklevel=2)

    return Logger()


def version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", str(version))
    if not match:
        raise EmoedgeError(f"TensorRT version {version!r}: not of the form MAJOR.MINOR[.PATCH]")
    return int(match[1]), int(match[2])
