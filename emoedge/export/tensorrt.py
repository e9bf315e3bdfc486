"""ONNX → TensorRT engine for one target (SPEC §7), with a sidecar JSON that makes the engine self-describing.

Why two build modes: TensorRT 11 builds strongly typed networks only (BuilderFlag.FP16/INT8 and the calibrators are
gone), so the precision must already be in the ONNX (`emoedge export precision`); JetPack 6 ships TensorRT 10.3,
where weak typing with the FP16/INT8 builder flags still works. Weak typing is deprecated from 10.12, so from there
on the strongly typed build is used, before it the weak one — chosen by `tensorrt.__version__`.
Why a sidecar (`<engine>.json`): an engine runs only with the TensorRT version and on the GPU model that built it;
the sidecar records both, with the model card, so the runtime refuses a foreign engine with one line instead of a
deserialisation failure, and knows the categories, thresholds and preprocessing without the ONNX file.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from emoedge import __version__
from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.targets import Target, load_target
from emoedge.fileio import atomic_write, atomic_write_text

SIDECAR_FORMAT = "emoedge-engine-1"
MIN_TENSORRT = (10, 3)  # JetPack 6; name-based I/O and execute_async_v3 everywhere
STRONG_TYPING_FROM = (10, 12)  # weak typing deprecated here, removed in 11
WEAK_FLAGS = {"fp16": ("FP16",), "int8": ("FP16", "INT8"), "fp32": ()}  # INT8 engines also need FP16 kernels
REBUILD = "rebuild it on this machine with `emoedge export engine`"
INSTALL_HINT = (
    "TensorRT is not installed: `pip install tensorrt` from NVIDIA's index (or `pip install 'emoedge[tensorrt]'`), "
    "or on a Jetson use JetPack's python3-libnvinfer"
)


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar: the card and what the engine was built with, for, and from."""

    card: ModelCard
    tensorrt: str
    gpu_name: str
    compute_capability: tuple[int, int]
    target: str
    persons: tuple[int, int, int]  # min, opt, max of the optimisation profile over N
    precision: str
    strongly_typed: bool
    dla_core: int | None
    engine_bytes: int
    build_seconds: float
    built_at: str
    onnx: str
    emoedge: str = __version__

    def to_dict(self) -> dict[str, Any]:
        h, w = self.card.body_size
        body = dict(zip(("min", "opt", "max"), ([n, 3, h, w] for n in self.persons)))
        return {
            "format": SIDECAR_FORMAT,
            "card": self.card.to_dict(),
            "tensorrt": self.tensorrt,
            "gpu": {"name": self.gpu_name, "compute_capability": list(self.compute_capability)},
            "target": self.target,
            "profile": {"image": [1, 3, *self.card.image_size], "body": body},
            "precision": self.precision,
            "strongly_typed": self.strongly_typed,
            "dla_core": self.dla_core,
            "engine_bytes": self.engine_bytes,
            "build_seconds": self.build_seconds,
            "built_at": self.built_at,
            "onnx": self.onnx,
            "emoedge": self.emoedge,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineInfo:
        """Rebuild from `to_dict` output; KeyError/TypeError/ValueError on malformed data (see read_engine_info)."""
        body = data["profile"]["body"]
        major, minor = (int(v) for v in data["gpu"]["compute_capability"])
        return cls(
            card=ModelCard.from_dict(data["card"]), tensorrt=str(data["tensorrt"]), gpu_name=str(data["gpu"]["name"]),
            compute_capability=(major, minor), target=str(data["target"]),
            persons=tuple(int(body[k][0]) for k in ("min", "opt", "max")),  # type: ignore[arg-type]
            precision=str(data["precision"]), strongly_typed=bool(data["strongly_typed"]),
            dla_core=None if data["dla_core"] is None else int(data["dla_core"]),
            engine_bytes=int(data["engine_bytes"]), build_seconds=float(data["build_seconds"]),
            built_at=str(data["built_at"]), onnx=str(data["onnx"]), emoedge=str(data["emoedge"]),
        )


@dataclass(frozen=True)
class EngineResult:
    """Where the engine and its sidecar went, what was built, and the trtexec line that builds the same."""

    path: Path
    sidecar: Path
    info: EngineInfo
    trtexec: str
    timing_cache: Path | None

    @property
    def summary(self) -> str:
        i = self.info
        typing = "strongly typed" if i.strongly_typed else "weakly typed"
        dla = f", DLA core {i.dla_core}" if i.dla_core is not None else ""
        return (
            f"{self.path}: TensorRT {i.tensorrt} ({typing}), {i.precision}, persons {'/'.join(map(str, i.persons))}"
            f"{dla}, for {i.gpu_name} (compute capability {i.compute_capability[0]}.{i.compute_capability[1]}), "
            f"built in {i.build_seconds:.0f} s"
        )


def build_engine(
    onnx_path: str | Path, target: str | Path | Target, out: str | Path, *, timing_cache: str | Path | None = None
) -> EngineResult:
    """Build `out` (and `<out>.json`) from an emoedge ONNX for `target` on this machine's current CUDA GPU.

    `timing_cache` overrides the target's; the cache is loaded if it exists and saved back after the build, which
    makes rebuilds on the same GPU much faster.
    """
    from emoedge.backends.onnxruntime import graph_precision
    from emoedge.export.onnx import card_of, load_onnx

    onnx_path, out = Path(onnx_path), Path(out)
    target = target if isinstance(target, Target) else load_target(target)
    model = load_onnx(onnx_path)
    card, stored = card_of(model, onnx_path), graph_precision(model)
    del model  # the parser reads the file itself; weights need not stay in memory twice
    trt = import_tensorrt()
    strong = strongly_typed_build(trt.__version__)
    flags = builder_flags(target, stored, strongly_typed=strong, onnx_path=onnx_path, version=trt.__version__)
    gpu_name, capability = cuda_gpu()
    cache_path = Path(timing_cache) if timing_cache else target.timing_cache_for(out)
    command = trtexec_command(onnx_path, out, target, card.body_size, strongly_typed=strong, timing_cache=cache_path)

    logger = tensorrt_logger(trt)
    builder = trt.Builder(logger)
    # TensorRT 11 is always strongly typed and ignores the (deprecated) flag; 10.x must be asked.
    typed = strong and _version(trt.__version__)[0] == 10
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EmoedgeError(_parser_error(parser, onnx_path))
    inputs = sorted(network.get_input(i).name for i in range(network.num_inputs))
    if inputs != ["body", "image"]:
        raise EmoedgeError(f"ONNX model {onnx_path}: inputs {inputs}, expected ['body', 'image']; export it again")
    config = _configure(trt, builder, target, card, flags)
    _use_timing_cache(config, cache_path)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        reason = logger.errors[-1] if logger.errors else "no reason given"
        raise EmoedgeError(f"TensorRT could not build an engine from {onnx_path} for target {target.name!r}: {reason}")

    sidecar = sidecar_path(out)
    sidecar.unlink(missing_ok=True)  # never leave an old sidecar describing a new engine
    atomic_write(out, lambda tmp: tmp.write_bytes(plan))
    if cache_path is not None:
        serialized = config.get_timing_cache().serialize()
        atomic_write(cache_path, lambda tmp: tmp.write_bytes(serialized))
    p = target.persons
    info = EngineInfo(
        card=card, tensorrt=trt.__version__, gpu_name=gpu_name, compute_capability=capability, target=target.name,
        persons=(p.min, p.opt, p.max), precision=target.precision, strongly_typed=strong, dla_core=target.dla_core,
        engine_bytes=out.stat().st_size, build_seconds=round(seconds, 1),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), onnx=onnx_path.name,
    )
    write_engine_info(out, info)
    return EngineResult(out, sidecar, info, command, cache_path)


def trtexec_command(
    onnx_path: str | Path, engine_path: str | Path, target: Target, body_size: tuple[int, int], *,
    strongly_typed: bool, timing_cache: str | Path | None = None,
) -> str:
    """The `trtexec` command line that builds the same engine (for users and bug reports), shell-quoted."""
    h, w = body_size
    p = target.persons
    args = [
        "trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
        *(f"--{kind}Shapes=body:{n}x3x{h}x{w}" for kind, n in (("min", p.min), ("opt", p.opt), ("max", p.max))),
        f"--memPoolSize=workspace:{target.workspace_mib}",  # MiB
    ]
    args += ["--stronglyTyped"] if strongly_typed else [f"--{flag.lower()}" for flag in WEAK_FLAGS[target.precision]]
    if target.dla_core is not None:
        args += [f"--useDLACore={target.dla_core}"] + (["--allowGPUFallback"] if target.gpu_fallback else [])
    args.append(f"--builderOptimizationLevel={target.builder_optimization_level}")
    if timing_cache is not None:
        args.append(f"--timingCacheFile={timing_cache}")
    args.append("--skipInference")
    return shlex.join(args)


def strongly_typed_build(version: str) -> bool:
    """Whether this TensorRT version builds strongly typed (10.12+, 11); older than 10.3 is an EmoedgeError."""
    parsed = _version(version)
    if parsed < MIN_TENSORRT:
        raise EmoedgeError(f"TensorRT {version} is too old: emoedge needs TensorRT 10.3 or newer (JetPack 6)")
    return parsed >= STRONG_TYPING_FROM


def builder_flags(
    target: Target, graph: str, *, strongly_typed: bool, onnx_path: str | Path, version: str
) -> tuple[str, ...]:
    """BuilderFlag names for a target precision and the ONNX graph's precision ('fp32', 'fp16', 'int8').

    Strongly typed builds take the precision from the graph, so the two must agree; weakly typed builds may also
    lower an FP32 graph to FP16. INT8 is built only from Q/DQ graphs (emoedge uses no calibrator).
    """
    wanted = target.precision
    if graph == wanted or (not strongly_typed and wanted == "fp16" and graph == "fp32"):
        return () if strongly_typed else WEAK_FLAGS[wanted]
    how = {
        "fp16": "make the FP16 ONNX with `emoedge export precision`",
        "int8": "make the INT8 Q/DQ ONNX with `emoedge export precision` (with calibration data)",
        "fp32": "use the FP32 ONNX from `emoedge export onnx`",
    }[wanted]
    why = (
        f"TensorRT {version} builds strongly typed networks, which take their precision from the graph"
        if strongly_typed else "the graph fixes the precision (INT8 needs a Q/DQ graph; FP16 or INT8 graphs stay so)"
    )
    raise EmoedgeError(
        f"target {target.name!r} asks {wanted} but {Path(onnx_path).name} is a {graph} graph; {why}: {how}, "
        f"or use a target with precision {graph}"
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


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_engine_info(engine: str | Path, info: EngineInfo) -> Path:
    return atomic_write_text(sidecar_path(engine), json.dumps(info.to_dict(), indent=2) + "\n")


def read_engine_info(engine: str | Path) -> EngineInfo:
    """The sidecar of an engine, checked to describe this very file; anything wrong is one EmoedgeError line."""
    engine, path = Path(engine), sidecar_path(engine)
    if not engine.is_file():
        raise EmoedgeError(f"engine {engine}: file not found")
    if not path.is_file():
        raise EmoedgeError(
            f"engine {engine}: no sidecar {path.name} beside it (the model card and what the engine was built with); "
            f"{REBUILD}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EmoedgeError(f"engine sidecar {path}: not readable JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise EmoedgeError(f"engine sidecar {path}: not an emoedge engine sidecar (expected format {SIDECAR_FORMAT!r})")
    try:
        info = EngineInfo.from_dict(data)
    except EmoedgeError as exc:
        raise EmoedgeError(f"engine sidecar {path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise EmoedgeError(f"engine sidecar {path}: missing or malformed field ({type(exc).__name__}: {exc})") from None
    size = engine.stat().st_size
    if size != info.engine_bytes:
        raise EmoedgeError(
            f"engine {engine}: its sidecar describes another engine ({info.engine_bytes} bytes, the file has {size}); "
            f"{REBUILD}"
        )
    return info


def check_compatible(
    info: EngineInfo, engine: str | Path, *, tensorrt_version: str, gpu_name: str, compute_capability: tuple[int, int]
) -> None:
    """Refuse an engine built with another TensorRT version or for another GPU model, naming which."""
    if info.tensorrt != tensorrt_version:
        raise EmoedgeError(
            f"engine {engine} was built with TensorRT {info.tensorrt}, this machine has TensorRT {tensorrt_version}; "
            f"engines run only with the version that built them: {REBUILD}"
        )
    built, here = tuple(info.compute_capability), tuple(compute_capability)
    if built != here or info.gpu_name != gpu_name:
        raise EmoedgeError(
            f"engine {engine} was built for {info.gpu_name!r} (compute capability {built[0]}.{built[1]}), this GPU is "
            f"{gpu_name!r} ({here[0]}.{here[1]}); engines run only on the GPU model that built them: {REBUILD}"
        )


def _version(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", str(version))
    if not match:
        raise EmoedgeError(f"TensorRT version {version!r}: not of the form MAJOR.MINOR[.PATCH]")
    return int(match[1]), int(match[2])


def _parser_error(parser, onnx_path: Path) -> str:  # noqa: ANN001 (trt.OnnxParser)
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    first = f"{errors[0].desc()} (node {errors[0].node()})" if errors else "no reason given"
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return f"ONNX model {onnx_path}: TensorRT's ONNX parser failed: {first}{more}"


def _configure(trt, builder, target: Target, card: ModelCard, flags: tuple[str, ...]):  # noqa: ANN001
    """Builder config: workspace, optimisation level, precision flags, the profile over N, DLA."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, target.workspace_bytes)
    config.builder_optimization_level = target.builder_optimization_level
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    h, w = card.body_size
    p = target.persons
    profile = builder.create_optimization_profile()  # `image` is static [1,3,H,W]: only `body` needs a range
    profile.set_shape("body", [p.min, 3, h, w], [p.opt, 3, h, w], [p.max, 3, h, w])
    config.add_optimization_profile(profile)
    if target.dla_core is not None:
        if target.dla_core >= builder.num_DLA_cores:
            raise EmoedgeError(
                f"target {target.name!r}: dla_core {target.dla_core}, but this machine has {builder.num_DLA_cores} "
                "DLA core(s); use dla_core null"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = target.dla_core
        if target.gpu_fallback:  # layers the DLA cannot run go to the GPU instead of failing the build
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    return config


def _use_timing_cache(config, path: Path | None) -> None:  # noqa: ANN001 (trt.IBuilderConfig)
    """Load the timing cache at `path` (or start an empty one); a cache from another GPU/version is replaced."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False):
        warnings.warn(f"timing cache {path} was made for another GPU or TensorRT version; starting a new one",
                      stacklevel=3)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
