"""PyTorch backend: a training checkpoint run as it is, on the CPU or a CUDA GPU, in FP32, FP16 or BF16.

Why cast the whole model (not autocast) and use channels_last: a deployed model has no training-time FP32
master weights to keep, and oneDNN (CPU, BF16) and cuDNN (GPU, FP16) run their fastest convolutions on NHWC
tensors; on this project's AVX512-BF16 CPU a ResNet18 runs about 3–5× faster in BF16 than in FP32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoedge.backends.base import Backend
from emoedge.devices import TORCH_KINDS, parse_device
from emoedge.errors import EmoedgeError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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


class TorchBackend(Backend):
    """A checkpoint's DeployModel in eval mode, cast to the chosen precision, in channels_last layout."""

    name = "torch"

    def __init__(self, path: str | Path, *, device: str = "auto", precision: str = "auto") -> None:
        from emoedge.formats.checkpoint import load_trained_model
        from emoedge.model.deploy import DeployModel

        self.device, self.precision, self.reason = choose(device, precision)
        self.dtype = DTYPES[self.precision]
        net, self.card, _ = load_trained_model(path)
        self.model = DeployModel(net).eval().to(self.device, self.dtype, memory_format=torch.channels_last)

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        index = torch.from_numpy(frame).to(self.device, non_blocking=True)
        with torch.inference_mode():
            outputs = self.model(self._tensor(image), self._tensor(body), index)
        return {name: out.float().cpu().numpy() for name, out in zip(self.model.output_names, outputs)}

    def _tensor(self, value: Any) -> torch.Tensor:
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        return tensor.to(self.device, self.dtype, non_blocking=True, memory_format=torch.channels_last)
