"""Device strings: one spelling, one parser and one help text for everything that trains or runs a model.

Why one parser: "auto", "cpu", "cuda[:K]", "tensorrt[:K]" and "openvino[:CPU|GPU|NPU|AUTO]" were parsed in some seven places with three help
texts, each taking a slightly different set (one read "cuda:x" as an error, another as a torch traceback). Every
consumer now parses with `parse_device`, narrowed to the kinds it runs on, so a wrong device is the same one line
everywhere: the key, the value and what that consumer takes. Standard library only, so that the CLI's help and
the settings classes read it without importing torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from emoedge.errors import EmoedgeError

Kind = Literal["auto", "cpu", "cuda", "tensorrt", "openvino"]
KINDS: tuple[Kind, ...] = get_args(Kind)
TORCH_KINDS: tuple[Kind, ...] = ("auto", "cpu", "cuda")  # what PyTorch runs on: training, checkpoints
GPU_KINDS: tuple[Kind, ...] = ("cuda", "tensorrt")  # the kinds that name a GPU (":K")
# OpenVINO's own device names after "openvino:" (GPU.K: the K-th Intel GPU); none: OpenVINO's CPU
OPENVINO_TARGETS = ("CPU", "GPU", "NPU", "AUTO")
_SPELLING = re.compile(r"(?P<kind>[a-z]+)(?::(?P<index>[0-9]+|(?P<target>[A-Za-z]+(?:\.[0-9]+)?)))?")


def spelled(kinds: tuple[Kind, ...] = KINDS) -> str:
    """How `kinds` are written, for help texts and errors: "auto, cpu, cuda[:K], tensorrt[:K] or
    openvino[:CPU|GPU|NPU|AUTO]"."""
    names = [
        f"{kind}[:K]" if kind in GPU_KINDS else f"{kind}[:{'|'.join(OPENVINO_TARGETS)}]" if kind == "openvino" else kind
        for kind in kinds
    ]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# What every --device of a command that runs a model file says: "auto" is each backend's fastest choice here
# (PyTorch: CUDA, else the CPU; ONNX files and IR folders: ONNX Runtime's TensorRT or CUDA provider where there is a
# CUDA GPU, else OpenVINO when installed, else ONNX Runtime's CPU provider; an engine: the current GPU); "cpu" runs
# an ONNX file in ONNX Runtime; "tensorrt" is ONNX Runtime's TensorRT provider, so only ONNX files take it; engines
# run on a CUDA GPU; "openvino" runs ONNX files and IR folders in OpenVINO (its CPU, or the device named).
DEVICE_HELP = (
    f"{spelled()} (auto: the fastest here; tensorrt: ONNX Runtime's TensorRT provider, for ONNX files; "
    "openvino: OpenVINO, for ONNX files and IR folders; an engine takes auto or cuda[:K])"
)
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
PRECISION_HELP = (  # one rule for eval, run, bench and serve: the score measured is the score deployed
    "auto: a checkpoint in FP32, as trained (fp16 on CUDA, bf16 on CPUs with AMX or AVX512-BF16: faster); ONNX files "
    "and engines as stored (in OpenVINO: BF16 on CPUs that have it)"
)
# How a model runs on CUDA (eval and run; bench measures the ways side by side): checkpoints (PyTorch), ONNX files on
# ONNX Runtime's CUDA provider and TensorRT engines replay one captured CUDA graph per shape bucket
CUDA_GRAPHS = ("auto", "on", "off")
CUDA_GRAPHS_HELP = (
    "on CUDA (checkpoints, ONNX files on ONNX Runtime's CUDA provider, engines): one captured CUDA graph per shape "
    "bucket, several times faster calls (auto: on for CUDA; a CPU never uses graphs)"
)
COMPILE_HELP = (
    "checkpoints: torch.compile the model (inductor, CUDA graphs on CUDA) for long runs; costs tens of seconds at start "
    "(cached on disk for the next run)"
)


@dataclass(frozen=True)
class Device:
    """A device as parsed: its kind, GPU `index` (None: auto, cpu, or the default GPU of a bare cuda/tensorrt) and,
    for openvino, OpenVINO's device name `target` ("CPU", "GPU", "GPU.1", "NPU", "AUTO"; None: a bare openvino)."""

    kind: Kind = "auto"
    index: int | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.index is not None and (self.kind not in GPU_KINDS or self.index < 0)):
            raise EmoedgeError(f"Device({self.kind!r}, {self.index!r}): expected {spelled()}")
        if self.target is not None and (self.kind != "openvino" or not _openvino_target(self.target)):
            raise EmoedgeError(f"Device({self.kind!r}, target={self.target!r}): expected {spelled()}")

    def __str__(self) -> str:
        """The canonical spelling, which `parse_device` reads back: "auto", "cuda", "tensorrt:1", "openvino:GPU"."""
        if self.target is not None:
            return f"{self.kind}:{self.target}"
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    @property
    def openvino(self) -> str:
        """OpenVINO's device name: the target, "CPU" for a bare openvino (the other kinds run on hosts' CPUs)."""
        return self.target or "CPU"

    def resolve(self, cuda: bool) -> Device:
        """For PyTorch: "auto" becomes cuda when `cuda` (a CUDA GPU is visible), else cpu; other devices stay."""
        if self.kind != "auto":
            return self
        return Device("cuda" if cuda else "cpu")

    @property
    def torch_device(self) -> str:
        """PyTorch's spelling: "cpu", "cuda" (torch's current GPU) or "cuda:K" (tensorrt:K runs on cuda:K too).
        "auto" has none until resolved (`resolve`), since only torch knows whether there is a GPU."""
        if self.kind == "auto":
            raise ValueError("device 'auto' has no torch spelling: resolve it first (Device.resolve)")
        if self.kind in ("cpu", "openvino"):  # OpenVINO takes its inputs from host memory
            return "cpu"
        return "cuda" if self.index is None else f"cuda:{self.index}"

    @property
    def ultralytics(self) -> str | None:
        """Ultralytics' spelling: "cpu" or "cuda:K" (K 0 when not given); None for auto, which lets it choose.
        openvino is "cpu": a PyTorch detector runs on the CPU beside it (an OpenVINO-exported one in OpenVINO)."""
        if self.kind == "auto":
            return None
        return "cpu" if self.kind in ("cpu", "openvino") else f"cuda:{self.index or 0}"


def parse_device(text: str, key: str = "device", *, kinds: tuple[Kind, ...] = KINDS, who: str = "") -> Device:
    """`text` ("auto", "cpu", "cuda[:K]", "tensorrt[:K]", "openvino[:CPU|GPU[.K]|NPU|AUTO]", OpenVINO's names in
    either case) as a Device whose kind is one of `kinds` (what the caller runs on). Anything else is one
    EmoedgeError line naming `key` and `text` and listing what is accepted, as `who` takes it when given
    ("device 'cpu': the tensorrt backend runs on auto or cuda[:K]")."""
    match = _SPELLING.fullmatch(text) if isinstance(text, str) else None
    kind = match["kind"] if match else None
    target = match["target"].upper() if match and match["target"] else None
    index = match["index"] if match and target is None else None
    if (
        match is None
        or kind not in kinds
        or (index is not None and kind not in GPU_KINDS)
        or (target is not None and (kind != "openvino" or not _openvino_target(target)))
        or (kind == "openvino" and index is not None)
    ):
        expected = f"{who} runs on" if who else "expected"
        raise EmoedgeError(f"{key} {text!r}: {expected} {spelled(kinds)}")
    return Device(kind, None if index is None else int(index), target)  # type: ignore[arg-type]


def graphs_wanted(cuda_graphs: str, on_cuda: bool, where: str) -> bool:
    """Whether a backend captures CUDA graphs: "auto" and "on" on CUDA, never elsewhere ("on" off CUDA is refused in
    one line; `where` says what runs the model instead, e.g. "this model runs on the CPU")."""
    if cuda_graphs not in CUDA_GRAPHS:
        raise EmoedgeError(f"cuda_graphs {cuda_graphs!r}: expected one of {list(CUDA_GRAPHS)}")
    if cuda_graphs == "on" and not on_cuda:
        raise EmoedgeError(f"cuda_graphs 'on': CUDA graphs need a CUDA device; {where} (use 'auto' or 'off')")
    return on_cuda and cuda_graphs != "off"


def _openvino_target(name: str) -> bool:
    """An OpenVINO device name emoedge takes: CPU, GPU, GPU.K, NPU or AUTO."""
    base, _, number = name.partition(".")
    return base in OPENVINO_TARGETS and (not number or (base == "GPU" and number.isdigit()))
