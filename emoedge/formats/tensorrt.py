"""Importing TensorRT and the rules of its versions, kept apart so that nothing else imports `tensorrt` directly.

Why two build modes: TensorRT 11 builds strongly typed networks only (BuilderFlag.FP16/INT8 and the calibrators are
gone), so the precision must already be in the ONNX; JetPack 6 ships TensorRT 10.3, where weak typing with the
FP16/INT8 builder flags still works. Weak typing is deprecated from 10.12, so from there on the strongly typed build
is used, before it the weak one — chosen by `tensorrt.__version__`.

Why the GPU is described by more than its name: an engine's kernels are chosen for one compute capability and SM
count, and every Jetson Orin module reports the name "Orin"; `CudaGpu` records what tells GPU models apart (SM count,
memory, integrated or not), and names the Orin module from NVIDIA's module data (128 CUDA cores per SM).
"""

from __future__ import annotations

import collections
import math
import re
import threading
import warnings
from dataclasses import dataclass

from emoedge.errors import EmoedgeError

MIN_TENSORRT = (10, 3)  # JetPack 6; name-based I/O and execute_async_v3 everywhere
STRONG_TYPING_FROM = (10, 12)  # weak typing deprecated here, removed in 11
# (built major, runtime major) that version-compatible engines cross: TensorRT's support matrix names 10 -> 11 (and
# 8 -> 9/10, which emoedge cannot build); within one major every later release runs them.
VERSION_COMPATIBLE_ACROSS = {(10, 11)}
_MEMORY_CLASSES_GIB = (4, 8, 16, 32, 64, 128)  # Jetson module sizes: the GPU sees the module's memory less carve-outs
# (SM count, memory class in GiB) -> Jetson Orin module (compute capability 8.7), from NVIDIA's module data:
# Orin Nano 4GB 512 CUDA cores, Orin Nano 8GB and Orin NX 1024, AGX Orin 32GB 1792, AGX Orin 64GB 2048.
ORIN_MODULES = {
    (4, 4): "Orin Nano 4GB",
    (8, 8): "Orin NX 8GB or Orin Nano 8GB",  # alike to the GPU: the DLA cores tell them apart (Orin Nano has none)
    (8, 16): "Orin NX 16GB",
    (14, 32): "AGX Orin 32GB",
    (16, 64): "AGX Orin 64GB",
}
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


@dataclass(frozen=True)
class CudaGpu:
    """A CUDA GPU as an engine depends on it; SM count, memory and `integrated` are None where unknown (sidecars
    written before they were recorded)."""

    name: str
    capability: tuple[int, int]
    sm_count: int | None = None
    memory_mib: int | None = None
    integrated: bool | None = None

    @property
    def memory_class_gib(self) -> int | None:
        """The memory rounded up to a module size (a Jetson's GPU sees its module's memory less carve-outs)."""
        if self.memory_mib is None:
            return None
        gib = self.memory_mib / 1024
        return next((size for size in _MEMORY_CLASSES_GIB if gib <= size), math.ceil(gib))

    @property
    def module(self) -> str | None:
        """The Jetson Orin module of an integrated GPU of compute capability 8.7, when SM count and memory name one."""
        if not self.integrated or tuple(self.capability) != (8, 7):
            return None
        return ORIN_MODULES.get((self.sm_count, self.memory_class_gib))

    def describe(self, *, short: bool = False) -> str:
        """E.g. "'Orin' (AGX Orin 64GB: 16 SMs, compute capability 8.7)"; `short` leaves out "compute capability"."""
        parts = [] if self.sm_count is None else [f"{self.sm_count} SMs"]
        if self.integrated and self.module is None and self.memory_class_gib is not None:
            parts.append(f"{self.memory_class_gib} GB")
        major, minor = self.capability
        parts.append(f"{'' if short else 'compute capability '}{major}.{minor}")
        module = f"{self.module}: " if self.module else ""
        return f"{self.name!r} ({module}{', '.join(parts)})"


def cuda_gpu(index: int | None = None) -> CudaGpu:
    """A CUDA GPU as PyTorch sees it (default: the current one)."""
    import torch

    if not torch.cuda.is_available():
        raise EmoedgeError(
            "no CUDA GPU visible (torch.cuda.is_available() is False): TensorRT builds and runs engines on the "
            "NVIDIA GPU they are for"
        )
    index = torch.cuda.current_device() if index is None else index
    if not 0 <= index < torch.cuda.device_count():
        raise EmoedgeError(f"device cuda:{index}: only {torch.cuda.device_count()} CUDA GPU(s) visible")
    props = torch.cuda.get_device_properties(index)
    return CudaGpu(
        name=props.name,
        capability=(int(props.major), int(props.minor)),
        sm_count=int(props.multi_processor_count),
        memory_mib=int(props.total_memory) >> 20,
        integrated=bool(props.is_integrated),
    )


def engine_runs_on(built: str, runtime: str, *, version_compatible: bool) -> bool:
    """Whether TensorRT `runtime` deserializes an engine TensorRT `built` made: the same version only, unless it was
    built version-compatible; then also any later release of the same major, and of the next major where TensorRT
    supports it (`VERSION_COMPATIBLE_ACROSS`)."""
    if built == runtime:
        return True
    old, new = version_numbers(built), version_numbers(runtime)
    if not version_compatible or new < old:
        return False
    return new[0] == old[0] or (old[0], new[0]) in VERSION_COMPATIBLE_ACROSS


class LogRecord:
    """TensorRT's error messages, bounded and thread-safe (TensorRT may log from its own threads).

    `mark()` before a call and `error_since(mark)` after it attribute an error to that call, so a message names
    TensorRT's own reason for the failure at hand, not an older one.
    """

    def __init__(self, keep: int = 64) -> None:
        self._lock = threading.Lock()
        self._errors: collections.deque[str] = collections.deque(maxlen=keep)
        self._count = 0

    def add(self, message: str) -> None:
        with self._lock:
            self._errors.append(" ".join(message.split()))
            self._count += 1

    def mark(self) -> int:
        with self._lock:
            return self._count

    def error_since(self, mark: int, default: str = "no reason given") -> str:
        """The last error logged after `mark`, or `default`."""
        with self._lock:
            return self._errors[-1] if self._count > mark and self._errors else default


def tensorrt_logger(trt):  # -> trt.ILogger subclass instance, with a `record` (LogRecord)
    """The ONE TensorRT logger of this process, made on first use and handed to every builder and runtime.

    Why one: TensorRT treats the logger as a process-wide singleton — the first logger given to a builder or runtime
    receives the messages of every later one, whatever logger those were given. emoedge uses one logger for all its
    engines and claims it first (`claim_logging`) before another library (an Ultralytics `.engine` detector) can.
    """
    with _LOGGER_LOCK:
        logger = _LOGGERS.get(id(trt))
        if logger is None:
            logger = _LOGGERS[id(trt)] = _make_logger(trt)
        return logger


def claim_logging(trt) -> None:
    """Make emoedge's logger TensorRT's process logger now (a Runtime created with it), before anyone else's."""
    logger = tensorrt_logger(trt)
    with _LOGGER_LOCK:
        if not getattr(logger, "claimed", False):
            logger.runtime = trt.Runtime(logger)  # kept alive with the logger
            logger.claimed = True


def _make_logger(trt):
    severity = trt.ILogger.Severity

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.record = LogRecord()

        def log(self, level, msg: str) -> None:
            if level in (severity.ERROR, severity.INTERNAL_ERROR):
                self.record.add(msg)
            elif level == severity.WARNING:
                warnings.warn(f"TensorRT: {' '.join(msg.split())}", stacklevel=2)

    return Logger()


_LOGGER_LOCK = threading.Lock()
_LOGGERS: dict[int, object] = {}  # id(tensorrt module) -> its process-wide logger


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version_numbers(version)[:2]
    return major, minor


def version_numbers(version: str) -> tuple[int, ...]:
    """Every number of a TensorRT version ("10.3.0.26" -> (10, 3, 0, 26)), for ordering releases."""
    match = re.match(r"\d+\.\d+(?:\.\d+)*", str(version))
    if not match:
        raise EmoedgeError(f"TensorRT version {version!r}: not of the form MAJOR.MINOR[.PATCH]")
    return tuple(int(part) for part in match[0].split("."))
