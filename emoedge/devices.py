"""Device strings: one spelling, one parser and one help text for everything that trains or runs a model.

Why one parser: "auto", "cpu", "cuda[:K]" and "tensorrt[:K]" were parsed in some seven places with three help
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

Kind = Literal["auto", "cpu", "cuda", "tensorrt"]
KINDS: tuple[Kind, ...] = get_args(Kind)
TORCH_KINDS: tuple[Kind, ...] = ("auto", "cpu", "cuda")  # what PyTorch runs on: training, checkpoints
GPU_KINDS: tuple[Kind, ...] = ("cuda", "tensorrt")  # the kinds that name a GPU (":K")
_SPELLING = re.compile(r"(?P<kind>[a-z]+)(?::(?P<index>[0-9]+))?")


def spelled(kinds: tuple[Kind, ...] = KINDS) -> str:
    """How `kinds` are written, for help texts and errors: "auto, cpu, cuda[:K] or tensorrt[:K]"."""
    names = [f"{kind}[:K]" if kind in GPU_KINDS else kind for kind in kinds]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# What every --device of a command that runs a model file says: "auto" is each backend's fastest choice here
# (PyTorch: CUDA, else the CPU; ONNX Runtime: its TensorRT, else CUDA, else CPU provider; an engine: the current
# GPU); "tensorrt" is ONNX Runtime's TensorRT provider, so only ONNX files take it; engines run on a CUDA GPU.
DEVICE_HELP = (
    f"{spelled()} (auto: the fastest here; tensorrt: ONNX Runtime's TensorRT provider, for ONNX files; "
    "an engine takes auto or cuda[:K])"
)


@dataclass(frozen=True)
class Device:
    """A device as parsed: its kind and GPU `index` (None: auto, cpu, or the default GPU of a bare cuda/tensorrt)."""

    kind: Kind = "auto"
    index: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.index is not None and (self.kind not in GPU_KINDS or self.index < 0)):
            raise EmoedgeError(f"Device({self.kind!r}, {self.index!r}): expected {spelled()}")

    def __str__(self) -> str:
        """The canonical spelling, which `parse_device` reads back: "auto", "cuda", "tensorrt:1"."""
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

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
        if self.kind == "cpu":
            return "cpu"
        return "cuda" if self.index is None else f"cuda:{self.index}"

    @property
    def ultralytics(self) -> str | None:
        """Ultralytics' spelling: "cpu" or "cuda:K" (K 0 when not given); None for auto, which lets it choose."""
        if self.kind == "auto":
            return None
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index or 0}"


def parse_device(text: str, key: str = "device", *, kinds: tuple[Kind, ...] = KINDS, who: str = "") -> Device:
    """`text` ("auto", "cpu", "cuda[:K]", "tensorrt[:K]") as a Device whose kind is one of `kinds` (what the caller
    runs on). Anything else is one EmoedgeError line naming `key` and `text` and listing what is accepted, as
    `who` takes it when given ("device 'cpu': the tensorrt backend runs on auto or cuda[:K]")."""
    match = _SPELLING.fullmatch(text) if isinstance(text, str) else None
    if match is None or match["kind"] not in kinds or (match["index"] is not None and match["kind"] not in GPU_KINDS):
        expected = f"{who} runs on" if who else "expected"
        raise EmoedgeError(f"{key} {text!r}: {expected} {spelled(kinds)}")
    index = match["index"]
    return Device(match["kind"], None if index is None else int(index))
