"""OpenVINO backend: an emoedge ONNX file (FP32, FP16, either INT8 kind) or IR folder on an OpenVINO device.

Why OpenVINO on x86 CPUs: it runs the very same ONNX files faster than ONNX Runtime's CPU provider (measured in
benchmarks/results/openvino_cpu.md: its INT8 kernels fuse either Q/DQ placement, and its BF16 path uses the CPU's
BF16 instructions), so `load_model(..., device="auto")` picks it on a machine without a CUDA GPU when it is
installed. Why dynamic F and N on the CPU: its plugin compiles a graph with dynamic dimensions once and runs any
shape at the speed of a static one; Intel GPUs and NPUs want static shapes, so there F and N are padded up to the
next power of two and the graph is reshaped and compiled once per such bucket (base.Backend's bucket policy, shared
with CUDA graphs), the outputs sliced back. Precision is OpenVINO's inference-precision hint: FP32, or BF16 where the
CPU has BF16 instructions (OpenVINO's own default there), FP16 on an Intel GPU (its default); an NPU computes FP16
whatever it is told. An INT8 file runs its quantized parts in INT8 and the rest at the hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends.base import Backend, host_array
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.formats import ONNX_SUFFIXES
from emoedge.formats.onnx import card_of as onnx_card_of
from emoedge.formats.onnx import graph_precision, load_onnx
from emoedge.formats.openvino import card_of as ir_card_of
from emoedge.formats.openvino import core, ir_graph, ir_precision, read_ir

STATIC_TARGETS = ("GPU", "NPU")  # OpenVINO devices that want static shapes: compiled per bucket of F and N
MAX_BUCKETS = 8  # compiled shapes kept per backend (the oldest is dropped past it)


def _first_line(exc: BaseException) -> str:
    """OpenVINO's errors are a stack of "Exception from file:line" lines; the first other one says what failed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith("Exception from")), lines[-1] if lines else "")[:200]


class OpenVinoBackend(Backend):
    """One compiled model (per shape bucket on GPU/NPU) and one infer request; the card from the ONNX metadata or
    the IR's rt_info.

    `device`: "auto" or "openvino" (OpenVINO's CPU), "openvino:CPU", "openvino:GPU[.K]", "openvino:NPU" or
    "openvino:AUTO" (OpenVINO chooses). `precision`: "auto" (CPU: BF16 where it has BF16 instructions, else FP32;
    GPU and NPU: FP16; an INT8 file: INT8), "fp32", "bf16" (CPU), "fp16" (GPU, NPU, CPUs with FP16 instructions) or
    "int8" (an INT8 file's own). `threads`: the CPU plugin's inference threads (None: OpenVINO's choice, every core).
    """

    name = "openvino"

    def __init__(
        self, path: str | Path, *, device: str = "auto", precision: str = "auto", threads: int | None = None
    ) -> None:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        wanted = parse_device(device, kinds=("auto", "openvino"), who="the openvino backend")
        self.path = Path(path)
        self.core = core()  # the process's one Core (emoedge.formats.openvino: why never a Core of its own)
        self.target = _check_target(device, wanted.openvino, self.core.available_devices)
        model, self.card, stored = self._read(self.path)
        self.has_frame = "frame" in {name for port in model.inputs for name in port.get_names()}
        self.max_frames = None if self.has_frame else 1
        self.model = model
        self.precision, hint, why = _precision(self.core, self.target, precision, stored, self.path)
        self.device = f"openvino:{self.target}"
        self.bucketed = self.target.split(".")[0] in STATIC_TARGETS
        self.config: dict[Any, Any] = {hints.performance_mode: hints.PerformanceMode.LATENCY}
        if hint is not None:
            self.config[hints.inference_precision] = getattr(ov.Type, hint)
        if threads is not None and self.target == "CPU":
            self.config[props.inference_num_threads] = int(threads)
        self.outputs = [port.get_any_name() for port in model.outputs]
        self._compiled: dict[tuple[int, int] | None, Any] = {}
        self._requests: dict[tuple[int, int] | None, Any] = {}
        if not self.bucketed:
            self._request(None)  # compiled now: a graph OpenVINO cannot compile fails at load, as one line
        else:
            self._request((1, 1))
        threads_note = ""
        if self.target == "CPU":
            count = self._compiled[None].get_property(props.inference_num_threads)
            threads_note = f", {count} threads"
        shapes = "F and N padded to powers of two, compiled once per shape" if self.bucketed else "dynamic F and N"
        where = "auto on a CPU-only machine: OpenVINO runs ONNX files fastest here" if wanted.kind == "auto" else (
            "device requested"
        )  # fmt: skip
        self.reason = (
            f"OpenVINO {ov.get_version().split('-')[0]} on {self.target} ({where}), {self.precision} ({why}), "
            f"latency hint, {shapes}{threads_note}"
        )

    @property
    def input_device(self) -> str:
        """Host memory whatever the OpenVINO device: infer requests take numpy arrays."""
        return "cpu"

    def _read(self, path: Path) -> tuple[Any, Any, str]:
        """(ov.Model, card, stored precision) of an emoedge ONNX file or IR folder / model.xml."""
        if path.suffix.lower() in ONNX_SUFFIXES:
            proto = load_onnx(path)
            card, stored = onnx_card_of(proto, path), graph_precision(proto)
            del proto  # the weights once in memory (OpenVINO reads the file itself)
            try:
                return self.core.read_model(str(path)), card, stored
            except RuntimeError as exc:
                raise EmoedgeError(f"ONNX model {path}: OpenVINO cannot read it ({_first_line(exc)})") from None
        model = read_ir(self.core, ir_graph(path))
        return model, ir_card_of(model, path), ir_precision(model)

    def _request(self, shape: tuple[int, int] | None) -> Any:
        """The infer request for `shape` (F, N) — one for every shape on the CPU (None) — compiled on first use."""
        if shape in self._requests:
            return self._requests[shape]
        model = self.model
        if shape is not None:
            if len(self._compiled) >= MAX_BUCKETS:
                oldest = next(iter(self._compiled))
                del self._compiled[oldest], self._requests[oldest]
            frames, persons = shape
            model = self.model.clone()
            sizes = {"image": [frames, 3, *self.card.image_size], "body": [persons, 3, *self.card.body_size]}
            if self.has_frame:
                sizes["frame"] = [persons]
            model.reshape(sizes)
        try:
            compiled = self.core.compile_model(model, self.target, self.config)
        except RuntimeError as exc:
            raise EmoedgeError(
                f"model {self.path}: OpenVINO cannot compile it for {self.target} ({_first_line(exc)})"
            ) from None
        self._compiled[shape] = compiled
        self._requests[shape] = compiled.create_infer_request()
        return self._requests[shape]

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        image, body = host_array(image, np.float32), host_array(body, np.float32)
        shape = (len(image), len(body)) if self.bucketed else None  # base.Backend padded F and N to buckets
        feeds = {"image": image, "body": body}
        if self.has_frame:
            feeds["frame"] = np.ascontiguousarray(frame, np.int64)
        results = self._request(shape).infer(feeds)
        return {name: np.asarray(results[name], np.float32) for name in self.outputs}


def _check_target(device: str, target: str, available: list[str]) -> str:
    """OpenVINO's device name for `target`, checked against the devices OpenVINO finds here (one line if absent)."""
    base = target.split(".")[0]
    have = {name.split(".")[0] for name in available}
    found = target == "AUTO" and bool(available)
    found = found or target in available or (base == target and base in have) or (target == "GPU.0" and "GPU" in have)
    if not found:
        raise EmoedgeError(
            f"device {device!r}: OpenVINO finds no {target} here (available: {', '.join(available) or 'none'})"
        )
    return target


def _precision(ov_core: Any, target: str, precision: str, stored: str, path: Path) -> tuple[str, str | None, str]:
    """(precision that runs, OpenVINO inference-precision hint as an ov.Type name or None, why)."""
    choices = ("auto", "fp32", "bf16", "fp16", "int8")
    if precision not in choices:
        raise EmoedgeError(f"precision {precision!r}: the openvino backend takes {', '.join(map(repr, choices))}")
    if precision == "int8" and stored != "int8":
        raise EmoedgeError(
            f"precision 'int8': {path} is a {stored} model and OpenVINO runs INT8 only where the file is quantized; "
            "make one with `emoedge export openvino --int8` or `emoedge export precision --int8`"
        )
    base = target.split(".")[0]
    if base == "AUTO":
        if precision not in ("auto", "int8", stored):
            raise EmoedgeError(f"precision {precision!r}: with openvino:AUTO each device runs its default; use 'auto'")
        return stored, None, "stored; OpenVINO's AUTO chooses the device and its default precision"
    if base == "NPU":
        if precision not in ("auto", "fp16", "int8"):
            raise EmoedgeError(f"precision {precision!r}: an NPU computes in FP16 (and INT8 where quantized)")
        return ("int8" if stored == "int8" else "fp16"), None, "the NPU's own"
    capabilities = set(ov_core.get_property(base, "OPTIMIZATION_CAPABILITIES"))
    if base == "GPU":
        default, why = "fp16", "the GPU's default"
    elif "BF16" in capabilities:
        default, why = "bf16", "this CPU has BF16 instructions: OpenVINO's default there"
    else:
        default, why = "fp32", "this CPU has no BF16 instructions"
    run = default if precision in ("auto", "int8") else precision
    if precision not in ("auto", "int8"):
        why = "precision requested"
        if run.upper() not in capabilities:
            raise EmoedgeError(
                f"precision {precision!r}: OpenVINO's {base} here does not compute in {run.upper()} "
                f"(it takes {', '.join(sorted(c.lower() for c in capabilities if c in ('FP32', 'BF16', 'FP16')))})"
            )
    hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[run]
    if stored == "int8":
        return "int8", hint, f"quantized file; the rest in {run}"
    return run, hint, why
