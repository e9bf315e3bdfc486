"""Importing TensorRT and the rules of its versions, kept apart so that nothing else imports `tensorrt` directly.

Why two build modes: TensorRT 11 builds strongly typed networks only (BuilderFlag.FP16/INT8 and the calibrators are
gone), so the precision must already be in the ONNX; JetPack 6 ships TensorRT 10.3, where weak typing with the
FP16/INT8 builder flags still works. Weak typing is deprecated from 10.12, so from there on the strongly typed build
is used, before it the weak one — chosen by `tensorrt.__version__`.
"""

from __future__ import annotations

import collections
import re
import threading
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
    match = re.match(r"(\d+)\.(\d+)", str(version))
    if not match:
        raise EmoedgeError(f"TensorRT version {version!r}: not of the form MAJOR.MINOR[.PATCH]")
    return int(match[1]), int(match[2])
