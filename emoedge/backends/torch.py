"""PyTorch backend: a training checkpoint run as it is, on the CPU or a CUDA GPU, in FP32, FP16 or BF16.

Why cast the whole model (not autocast) and use channels_last: a deployed model has no training-time FP32
master weights to keep, and oneDNN (CPU, BF16) and cuDNN (GPU, FP16) run their fastest convolutions on NHWC
tensors; on this project's AVX512-BF16 CPU a ResNet18 runs about 3–5× faster in BF16 than in FP32.

Why CUDA graphs (on by default on CUDA): three ResNets are hundreds of small kernels, each launched from Python; on a
datacenter GPU an eager call takes 10–17 ms whatever N is, and the same module captured once per shape and replayed
takes 2–5 ms (issue 28). A graph is fixed to its shapes, so a graphed backend is `bucketed` (base.Backend pads F and
N up to powers of two) and bounded to GRAPH_FRAMES frames × GRAPH_PERSONS persons per call (more run in groups and
slices): at most 4 × 7 = 28 graphs, all in one shared memory pool, so no eviction is needed (emoedge.backends.
cuda_graphs captures and replays them). `--compile` instead
hands the model to torch.compile (inductor; on CUDA mode "reduce-overhead", which captures its own graphs), bucketed
the same way so that it compiles a handful of shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoedge.backends.base import Backend
from emoedge.backends.cuda_graphs import GraphBuckets, Step
from emoedge.devices import TORCH_KINDS, graphs_wanted, parse_device
from emoedge.errors import EmoedgeError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
GRAPH_FRAMES = 8  # frames per graphed or compiled call: buckets 1, 2, 4, 8 (a tick of more streams runs in groups)
GRAPH_PERSONS = 64  # persons per graphed or compiled call: buckets 1..64; a GPU is busy well before 64 crops


def cpu_bf16_feature() -> str | None:
    """ "AMX" or "AVX512-BF16" when the CPU does BF16 in hardware, else None (torch's probes are private: guarded)."""
    for probe, feature in (("_is_amx_tile_supported", "AMX"), ("_is_avx512_bf16_supported", "AVX512-BF16")):
        if getattr(torch.cpu, probe, lambda: False)():
            return feature
    return None


def choose(device: str, precision: str) -> tuple[str, str, str]:
    """(device, precision, reason) for the requested values. "auto" is FP32: a checkpoint runs as it was trained
    (in `eval`, `run`, `bench` and `serve` alike, so that a score measured is the score deployed); the reason names
    the faster precision this device has, for a user to ask for."""
    cuda = torch.cuda.is_available()
    wanted = parse_device(device, kinds=TORCH_KINDS, who="the torch backend")
    chosen = wanted.resolve(cuda)
    if wanted.kind == "auto":
        where = "CUDA GPU found" if cuda else "no CUDA GPU"
    else:
        where = "device requested"
    on_cuda = chosen.kind == "cuda"
    if on_cuda and not cuda:
        raise EmoedgeError(f"device {device!r}: CUDA is not available to PyTorch here; use device 'cpu' or 'auto'")
    device = chosen.torch_device
    if precision == "auto":
        if on_cuda:
            faster = "--precision fp16 is faster on CUDA"
        elif feature := cpu_bf16_feature():
            faster = f"--precision bf16 is faster on this CPU's {feature}"
        else:
            faster = "this CPU has no AMX or AVX512-BF16"
        precision, why = "fp32", f"a checkpoint runs as trained; {faster}"
    elif precision not in DTYPES:
        raise EmoedgeError(f"precision {precision!r}: expected 'auto' or one of {sorted(DTYPES)}")
    elif precision == "fp16" and not on_cuda:
        raise EmoedgeError("precision 'fp16': the torch backend runs FP16 on CUDA only; on a CPU use 'bf16' or 'fp32'")
    else:
        why = "precision requested"
        if precision == "bf16" and not on_cuda and not cpu_bf16_feature():
            why += "; this CPU has no native BF16, expect it to be slower than FP32"
    return device, precision, f"PyTorch on {device} ({where}), {precision} ({why}), channels_last"


def execution(cuda_graphs: str, compile: bool, on_cuda: bool) -> tuple[bool, str | None, str]:
    """(capture CUDA graphs, torch.compile's mode or None, the words for `reason`). "auto" graphs on CUDA only: a
    CPU call is not launch-bound; with --compile, torch.compile's "reduce-overhead" mode captures the graphs (its
    "default" mode where graphs are off)."""
    graphs = graphs_wanted(cuda_graphs, on_cuda, "this model runs on the CPU")
    if compile:
        mode = "reduce-overhead" if graphs else "default"
        return False, mode, f"torch.compile ({mode})"
    if graphs:
        return True, None, f"CUDA graphs per shape bucket (<= {GRAPH_FRAMES} frames x {GRAPH_PERSONS} persons a call)"
    return False, None, "eager" + (" (cuda_graphs off)" if on_cuda else "")


class TorchBackend(Backend):
    """A checkpoint's DeployModel in eval mode, cast to the chosen precision, in channels_last layout; run eagerly,
    as CUDA graphs (`cuda_graphs`, see `execution`) or through torch.compile (`compile`).

    torch.compile costs tens of seconds per shape at the first calls (`warm` makes them before the first frame);
    inductor keeps what it compiled on disk (TORCHINDUCTOR_CACHE_DIR, default /tmp/torchinductor_<user>), so a
    later run of the same model and shapes loads it in seconds.
    """

    name = "torch"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "auto",
        precision: str = "auto",
        cuda_graphs: str = "auto",
        compile: bool = False,
    ) -> None:
        from emoedge.formats.checkpoint import load_trained_model
        from emoedge.model.deploy import DeployModel

        self.path = Path(path)
        self.device, self.precision, self.reason = choose(device, precision)
        graphs, compile_mode, how = execution(cuda_graphs, compile, self.device.startswith("cuda"))
        self.dtype = DTYPES[self.precision]
        net, self.card, _ = load_trained_model(path)
        self.model = DeployModel(net).eval().to(self.device, self.dtype, memory_format=torch.channels_last)
        self.reason += f", {how}"
        self._forward: Any = self.model
        self._graphs = None
        if graphs:
            self._graphs = GraphBuckets(self.device, self._graph_step, self.model.output_names, self._eager,
                                        strict=cuda_graphs == "on")  # fmt: skip
        if compile_mode is not None:
            self._forward = _compiled(self.model, compile_mode, self.path)
        if graphs or compile_mode is not None:  # one graph or compiled program per shape: a handful of shapes
            self.bucketed, self.max_frames, self.max_persons = True, GRAPH_FRAMES, GRAPH_PERSONS

    @property
    def graph_shapes(self) -> list[tuple[int, int]]:
        """(F, N) of every CUDA graph captured so far (none without graphs)."""
        return sorted(self._graphs.captured) if self._graphs is not None else []

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            if self._graphs is not None:
                return self._graphs.run(image, body, frame)
            return self._eager(image, body, frame)

    def _eager(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        """One call of the model (or its compiled form) launched op by op: the path without graphs."""
        index = torch.from_numpy(frame).to(self.device, non_blocking=True)
        return _numpy(self._forward(self._tensor(image), self._tensor(body), index), self.model.output_names)

    def _graph_step(self, frames: int, persons: int) -> Step:
        """What a CUDA graph captures for any shape: the cast to the model's precision and layout, then the model."""
        del frames, persons  # the module takes every shape as it is

        def step(image: torch.Tensor, body: torch.Tensor, frame: torch.Tensor) -> Any:
            return self.model(self._tensor(image), self._tensor(body), frame)

        return step

    def _tensor(self, value: Any) -> torch.Tensor:
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        return tensor.to(self.device, self.dtype, non_blocking=True, memory_format=torch.channels_last)


def _compiled(model: torch.nn.Module, mode: str, path: Path) -> Any:
    """torch.compile of `model` with one program per (bucketed) shape; refused in one line where this torch cannot
    compile. Dynamo recompiles at most `recompile_limit` shapes per function, then runs the rest eagerly: raised to
    the number of buckets."""
    try:
        compiled = torch.compile(model, mode=mode, dynamic=False)
    except RuntimeError as exc:  # e.g. a platform or Python version torch.compile does not support
        raise _compile_failed(path, exc) from None
    config = torch._dynamo.config
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # renamed in torch 2.6
    setattr(config, limit, max(getattr(config, limit), GRAPH_FRAMES.bit_length() * GRAPH_PERSONS.bit_length()))

    def forward(*inputs: torch.Tensor) -> Any:
        try:
            return compiled(*inputs)
        except torch._dynamo.exc.TorchDynamoException as exc:  # compiling a new shape failed (no C compiler, ...)
            raise _compile_failed(path, exc) from None

    return forward


def _compile_failed(path: Path, exc: BaseException) -> EmoedgeError:
    """One line with dynamo's reason: its first line that is not the "backend='inductor' raised:" header (torch
    before 2.6 puts the reason on the line after it)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = next((line for line in lines if not line.endswith("raised:")), type(exc).__name__)
    return EmoedgeError(f"model {path}: torch.compile cannot compile it here ({reason}); leave --compile off")


def _numpy(outputs: Any, names: list[str]) -> dict[str, np.ndarray]:
    return {name: out.float().cpu().numpy() for name, out in zip(names, outputs)}
