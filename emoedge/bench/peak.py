"""How close a path comes to the machine: the model's arithmetic per call against the matrix-multiply rate measured
in the same run, at the path's precision.

Why count with torch's own `FlopCounterMode`: it counts the convolutions and matrix products of the very network
the card describes (built with random weights; the count does not depend on them), the same for every file format
of that model. Effective rate = that count ÷ the call's median latency.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch

from emoedge.card import ModelCard
from emoedge.devices import parse_device

GEMM_SIZE = 2048  # square matrix products: large enough to reach the library's best rate on a CPU core or GPU
GEMM_SECONDS = 0.6
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}


def model_gflop(card: ModelCard, persons: int) -> float:
    """GFLOP (multiply and add counted apart) of one call with one frame and `persons` persons."""
    return model_gflops(card, (persons,))[persons]


def model_gflops(card: ModelCard, persons: Iterable[int]) -> dict[int, float]:
    """`model_gflop` for each N of `persons`, the network built once."""
    from torch.utils.flop_counter import FlopCounterMode

    from emoedge.model.deploy import DeployModel
    from emoedge.model.net import EmotionNet

    net = EmotionNet(list(card.branches), dict(card.backbones), fusion=card.fusion, vad=card.vad)
    deploy = DeployModel(net).eval()
    image = torch.zeros(1, 3, *card.image_size)
    counts = {}
    for n in dict.fromkeys(persons):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            deploy(image, torch.zeros(n, 3, *card.body_size), torch.zeros(n, dtype=torch.int64))
        counts[n] = counter.get_total_flops() / 1e9
    return counts


def gemm_rate(precision: str, device: str = "cpu") -> float | None:
    """GFLOP/s (GOP/s for int8) of large matrix products at `precision` on `device` (cpu or cuda[:K]: where the
    model's inputs live); None where there is no fair reference: an unknown precision, int8 without `torch._int_mm`,
    FP16 on a CPU (torch's CPU FP16 product is a slow conversion fallback on CPUs without AVX512-FP16 or AMX-FP16, not
    the rate an FP16 ONNX graph gets), and BF16 on a CPU without AMX or AVX512-BF16 (an emulation some 500× slower
    than FP32, which the torch backend never chooses there)."""
    from emoedge.backends.torch import cpu_bf16_feature

    dtype = DTYPES.get(precision)
    device = parse_device(device, kinds=("cpu", "cuda")).torch_device
    on_cpu = device == "cpu"
    if dtype is None or (on_cpu and (dtype == torch.float16 or (dtype == torch.bfloat16 and not cpu_bf16_feature()))):
        return None
    n = GEMM_SIZE
    gen = torch.Generator().manual_seed(0)
    if dtype == torch.int8:
        a = torch.randint(-100, 100, (n, n), generator=gen, dtype=torch.int8).to(device)
        b = torch.randint(-100, 100, (n, n), generator=gen, dtype=torch.int8).to(device)
        op = getattr(torch, "_int_mm", None)
    else:
        a = torch.randn(n, n, generator=gen).to(device, dtype)
        b = torch.randn(n, n, generator=gen).to(device, dtype)
        op = torch.mm
    if op is None:
        return None
    try:
        op(a, b)
    except RuntimeError:  # this build or device has no kernel for the precision
        return None
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < GEMM_SECONDS:
        op(a, b)
        calls += 1
    if not on_cpu:
        torch.cuda.synchronize()
    return 2 * n**3 * calls / (time.perf_counter() - start) / 1e9
