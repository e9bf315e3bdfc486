"""CUDA graphs and torch.compile of the PyTorch backend on a CUDA GPU: the same outputs as eager at every N from 1
to 20 over 1 to 3 frames, one graph per shape bucket met, warming capturing every bucket of a run.

Here (no GPU) every test skips; with EMOEDGE_REQUIRE_GPU=1 such a skip is a failure. Run on a GPU machine with
`make gpu-check`, or:  EMOEDGE_REQUIRE_GPU=1 python -m pytest -q tests/gpu/test_gpu_graphs.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import assert_outputs_close  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.backends.base import bucket
from emoedge.bench.models import random_checkpoint

pytestmark = pytest.mark.gpu

# Graphs replay eager's kernels, but a padded bucket may choose other cuDNN algorithms than the unpadded call, so FP16
# rounding differs; the FP16 bound of test_gpu_paths.py (activations rounded to FP16 through the network) holds.
FP16_TOLERANCE = {"scores": 3e-2, "modality_weights": 3e-2, "vad": 2e-1}
PERSONS = range(1, 21)
FRAMES = range(1, 4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    return random_checkpoint(tmp_path_factory.mktemp("graphs") / "model.pt", "sample", seed=0)


def _compare(backend, reference, shapes) -> None:
    assert_outputs_close(backend, reference, FP16_TOLERANCE, shapes)


def test_cuda_graphs_give_eager_outputs_with_one_graph_per_bucket_met(checkpoint):
    eager = load_model(checkpoint, device="cuda", precision="fp16", cuda_graphs="off")
    graphs = load_model(checkpoint, device="cuda", precision="fp16")  # auto: graphs on CUDA
    assert "CUDA graphs per shape bucket" in graphs.reason and graphs.bucketed and not eager.bucketed
    shapes = [(n, f) for f in FRAMES for n in PERSONS]
    _compare(graphs, eager, shapes)
    assert graphs.graph_shapes == sorted({(bucket(f), bucket(n)) for n, f in shapes})
    _compare(graphs, eager, shapes[::7])  # replays of graphs already captured: still the inputs of this call


def test_warming_captures_every_bucket_of_a_run_and_no_call_captures_after(checkpoint):
    graphs = load_model(checkpoint, device="cuda", precision="fp16", cuda_graphs="on")
    calls, _ = graphs.warm(3, 20)
    assert calls == len(graphs.warm_shapes(3, 20)) and graphs.graph_shapes == sorted(graphs.warm_shapes(3, 20))
    eager = load_model(checkpoint, device="cuda", precision="fp16", cuda_graphs="off")
    _compare(graphs, eager, [(n, f) for f in FRAMES for n in (1, 5, 20)])
    assert graphs.graph_shapes == sorted(graphs.warm_shapes(3, 20))


def test_compile_on_cuda_gives_eager_outputs(checkpoint):
    """torch.compile "reduce-overhead" (inductor's kernels in its own CUDA graphs) at one bucket: tens of seconds."""
    eager = load_model(checkpoint, device="cuda", precision="fp16", cuda_graphs="off")
    compiled = load_model(checkpoint, device="cuda", precision="fp16", compile=True)
    assert compiled.reason.endswith("torch.compile (reduce-overhead)") and compiled.graph_shapes == []
    _compare(compiled, eager, [(8, 1), (5, 1)])  # N = 5 replays the N = 8 bucket
