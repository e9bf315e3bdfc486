"""ONNX → TensorRT engine for one target (SPEC §7), with a sidecar JSON that makes the engine self-describing.

The version rules (strongly typed from 10.12, weak typing with builder flags on 10.3) and the import live in
`emoedge.formats.tensorrt`; the sidecar in `emoedge.formats.engine`. This module only builds.
"""

from __future__ import annotations

import shlex
import time
import warnings
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.gate import MapGate, check_max_drop, map_gate, staged
from emoedge.export.targets import Target, load_target
from emoedge.fileio import atomic_write, output_file
from emoedge.formats.engine import EngineInfo, sidecar_path, write_engine_info
from emoedge.formats.onnx import card_of, graph_precision, int8_target, load_onnx, stored_types
from emoedge.formats.tensorrt import (
    cuda_gpu,
    import_tensorrt,
    strongly_typed_build,
    tensorrt_logger,
    version_tuple,
)

WEAK_FLAGS = {"fp16": ("FP16",), "int8": ("FP16", "INT8"), "fp32": ()}  # INT8 engines also need FP16 kernels


@dataclass(frozen=True)
class EngineResult:
    """Where the engine and its sidecar went, what was built, and the trtexec line that builds the same."""

    path: Path
    sidecar: Path
    info: EngineInfo
    trtexec: str
    timing_cache: Path | None
    parity: dict[int, float]  # persons N -> max |Δscore| of the engine against ONNX Runtime (CPU, FP32 inputs)
    gate: MapGate | None = None  # val mAP of the engine against its ONNX, when data was given

    @property
    def parity_line(self) -> str:
        pairs = ", ".join(f"N={n}: {d:.1e}" for n, d in self.parity.items())
        return f"parity vs ONNX Runtime (CPU) on this GPU: max |Δscore| {pairs}"

    @property
    def summary(self) -> str:
        i = self.info
        typing = "strongly typed" if i.strongly_typed else "weakly typed"
        dla = f", DLA core {i.dla_core}" if i.dla_core is not None else ""
        compatible = ", version-compatible" if i.version_compatible else ""
        return (
            f"{self.path}: TensorRT {i.tensorrt} ({typing}{compatible}), {i.precision}, persons "
            f"{'/'.join(map(str, i.persons))}{dla}, for {i.gpu.describe()}, built in {i.build_seconds:.0f} s"
        )


def build_engine(
    onnx_path: str | Path,
    target: str | Path | Target,
    out: str | Path,
    *,
    timing_cache: str | Path | None = None,
    data: Path | None = None,
    max_map_drop: float | None = None,
) -> EngineResult:
    """Build `out` (and `<out>.json`) from an emoedge ONNX for `target` on this machine's current CUDA GPU.

    `timing_cache` overrides the target's; the cache is loaded if it exists and saved back after the build, which
    makes rebuilds on the same GPU much faster. Every build ends with a parity check against ONNX Runtime (N = the
    profile's min and max). With `data`, the engine and its ONNX are evaluated on the validation split and the
    engine is refused (nothing written) when it loses more than `max_map_drop` points (default by precision).
    """
    onnx_path, out = Path(onnx_path), Path(out)
    target = target if isinstance(target, Target) else load_target(target)
    output_file(out, "engine output", (".engine", ".plan"))  # before the build's minutes, not after them
    max_drop = check_max_drop(max_map_drop, target.precision)
    with staged(out, ".json") as tmp:
        cache = Path(timing_cache) if timing_cache else target.timing_cache_for(out)
        result = _build(onnx_path, target, tmp, cache, shown_as=out)
        gate = None
        if data is not None:
            gate = map_gate(onnx_path, tmp, data, max_drop=max_drop, new_name=f"{target.precision} engine")
    return replace(result, path=out, sidecar=sidecar_path(out), gate=gate)


def _build(onnx_path: Path, target: Target, out: Path, cache_path: Path | None, *, shown_as: Path) -> EngineResult:
    """The build itself: engine and sidecar at `out`, the timing cache saved, the parity measured; the trtexec line
    names the engine `shown_as` (where it will be)."""
    model = load_onnx(onnx_path)
    card, stored, types = card_of(model, onnx_path), graph_precision(model), stored_types(model)
    multi_frame = "frame" in {i.name for i in model.graph.input}  # exported before it: one frame per call
    if int8_target(model) == "cpu":
        raise EmoedgeError(
            f"ONNX model {onnx_path}: its INT8 Q/DQ is placed for ONNX Runtime on CPUs (asymmetric u8), which "
            "TensorRT cannot build; make the TensorRT one with `emoedge export precision --int8 --int8-target tensorrt`"
        )
    del model  # the parser reads the file itself; weights need not stay in memory twice
    trt = import_tensorrt()
    strong = strongly_typed_build(trt.__version__)
    flags = builder_flags(target, stored, strongly_typed=strong, onnx_path=onnx_path, version=trt.__version__)
    allowed = types if strong else tuple(t for t in ("int8", "fp16", "fp32") if t == "fp32" or t.upper() in flags)
    gpu = cuda_gpu()
    command = trtexec_command(
        onnx_path, shown_as, target, card, strongly_typed=strong, timing_cache=cache_path, multi_frame=multi_frame
    )

    logger = tensorrt_logger(trt)
    mark = logger.record.mark()
    builder = trt.Builder(logger)
    # TensorRT 11 is always strongly typed and ignores the (deprecated) flag; 10.x must be asked.
    typed = strong and version_tuple(trt.__version__)[0] == 10
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EmoedgeError(_parser_error(parser, onnx_path))
    inputs = sorted(network.get_input(i).name for i in range(network.num_inputs))
    expected = ["body", "frame", "image"] if multi_frame else ["body", "image"]
    if inputs != expected:
        raise EmoedgeError(f"ONNX model {onnx_path}: inputs {inputs}, expected {expected}; export it again")
    config = _configure(trt, builder, target, card, flags, multi_frame=multi_frame)
    use_timing_cache(config, cache_path)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        reason = logger.record.error_since(mark)
        raise EmoedgeError(f"TensorRT could not build an engine from {onnx_path} for target {target.name!r}: {reason}")

    sidecar = sidecar_path(out)
    sidecar.unlink(missing_ok=True)  # never leave an old sidecar describing a new engine
    atomic_write(out, lambda tmp: tmp.write_bytes(plan))
    if cache_path is not None:
        serialized = config.get_timing_cache().serialize()
        atomic_write(cache_path, lambda tmp: tmp.write_bytes(serialized))
    p = target.persons
    info = EngineInfo(
        card=card,
        tensorrt=trt.__version__,
        gpu_name=gpu.name,
        compute_capability=gpu.capability,
        target=target.name,
        persons=(p.min, p.opt, p.max),
        precision=target.precision,
        strongly_typed=strong,
        dla_core=target.dla_core,
        engine_bytes=out.stat().st_size,
        build_seconds=round(seconds, 1),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        onnx=onnx_path.name,
        allowed_precisions=allowed,
        frames=target.frames if multi_frame else (1, 1, 1),
        frame_input=multi_frame,
        gpu_sm_count=gpu.sm_count,
        gpu_memory_mib=gpu.memory_mib,
        gpu_integrated=gpu.integrated,
        version_compatible=target.version_compatible,
    )
    write_engine_info(out, info)
    parity = engine_parity(out, onnx_path, sorted({p.min, p.max}), frames=info.frames[-1])
    return EngineResult(out, sidecar, info, command, cache_path, parity)


def engine_parity(engine: Path, onnx_path: Path, persons: list[int], frames: int = 1) -> dict[int, float]:
    """Max |Δscore| of the engine against ONNX Runtime on the CPU (the ONNX it came from, as stored), per N; the
    N persons are dealt over `frames` frames (the profile's maximum F)."""
    from emoedge.backends.onnxruntime import OnnxRuntimeBackend
    from emoedge.backends.tensorrt import TensorRTBackend
    from emoedge.export.onnx import example_inputs, spread

    built, reference = TensorRTBackend(engine), OnnxRuntimeBackend(onnx_path, device="cpu")
    diffs = {}
    for n in persons:
        f = min(frames, n)
        image, body = (t.numpy() for t in example_inputs(built.card, n, seed=n, frames=f))
        frame = spread(n, f).numpy()
        got, want = built.infer(image, body, frame)["scores"], reference.infer(image, body, frame)["scores"]
        diffs[n] = float(np.abs(got - want).max())
    return diffs


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    target: Target,
    card: ModelCard,
    *,
    strongly_typed: bool,
    timing_cache: str | Path | None = None,
    multi_frame: bool = True,
) -> str:
    """The `trtexec` command line that builds the same engine (for users and bug reports), shell-quoted."""
    h, w = card.body_size
    ih, iw = card.image_size
    p = target.persons
    shapes = []
    for kind, f, n in zip(("min", "opt", "max"), target.frames, (p.min, p.opt, p.max)):
        frame = f",image:{f}x3x{ih}x{iw},frame:{n}" if multi_frame else ""
        shapes.append(f"--{kind}Shapes=body:{n}x3x{h}x{w}{frame}")
    args = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        *shapes,
        f"--memPoolSize=workspace:{target.workspace_mib}",  # MiB
    ]
    args += ["--stronglyTyped"] if strongly_typed else [f"--{flag.lower()}" for flag in WEAK_FLAGS[target.precision]]
    if target.dla_core is not None:
        args += [f"--useDLACore={target.dla_core}"] + (["--allowGPUFallback"] if target.gpu_fallback else [])
    args.append(f"--builderOptimizationLevel={target.builder_optimization_level}")
    if target.version_compatible:
        args.append("--versionCompatible")
    if timing_cache is not None:
        args.append(f"--timingCacheFile={timing_cache}")
    args.append("--skipInference")
    return shlex.join(args)


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
        if strongly_typed
        else "the graph fixes the precision (INT8 needs a Q/DQ graph; FP16 or INT8 graphs stay so)"
    )
    raise EmoedgeError(
        f"target {target.name!r} asks {wanted} but {Path(onnx_path).name} is a {graph} graph; {why}: {how}, "
        f"or use a target with precision {graph}"
    )


def _parser_error(parser, onnx_path: Path) -> str:
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    first = f"{errors[0].desc()} (node {errors[0].node()})" if errors else "no reason given"
    more = f"; {len(errors) - 1} more error(s)" if len(errors) > 1 else ""
    return f"ONNX model {onnx_path}: TensorRT's ONNX parser failed: {first}{more}"


def _configure(trt, builder, target: Target, card: ModelCard, flags: tuple[str, ...], *, multi_frame: bool):
    """Builder config: workspace, optimisation level, precision and version-compatibility flags, the profile over N
    (and F), DLA."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, target.workspace_bytes)
    config.builder_optimization_level = target.builder_optimization_level
    for flag in flags + (("VERSION_COMPATIBLE",) if target.version_compatible else ()):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    h, w = card.body_size
    p = target.persons
    profile = builder.create_optimization_profile()
    profile.set_shape("body", [p.min, 3, h, w], [p.opt, 3, h, w], [p.max, 3, h, w])
    if multi_frame:  # otherwise `image` is static [1,3,H,W]
        ih, iw = card.image_size
        profile.set_shape("image", *([f, 3, ih, iw] for f in target.frames))
        profile.set_shape("frame", [p.min], [p.opt], [p.max])
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


def use_timing_cache(config, path: Path | None) -> None:
    """Give the builder the timing cache at `path`, or an empty one.

    A cache file from another GPU or TensorRT version, or a corrupt one, is not fatal: TensorRT's
    `create_timing_cache` may then return None (or raise) and `set_timing_cache` refuse it; the build starts from
    an empty cache with one warning, and the new cache replaces the file afterwards.
    """
    data = path.read_bytes() if path is not None and path.is_file() else b""
    if data:
        try:
            cache = config.create_timing_cache(data)
        except Exception:
            cache = None
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return
        warnings.warn(
            f"timing cache {path} is corrupt or was made for another GPU or TensorRT version; starting a new one",
            stacklevel=3,
        )
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise EmoedgeError("TensorRT refused an empty timing cache; this TensorRT installation looks broken")
