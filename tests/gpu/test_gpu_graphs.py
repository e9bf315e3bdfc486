"""CUDA graphs of every backend that captures them — PyTorch (FP16 checkpoint), ONNX Runtime's CUDA provider (FP32
ONNX) and TensorRT (FP16 engine, a graph of enqueueV3 per bucket) — and torch.compile, on a CUDA GPU: the same outputs
as eager at every N from 1 to 20 over 1 to 3 frames, one graph per shape bucket met, warming capturing every bucket of
a run, CUDA inputs replaying what host inputs do.

Here (no GPU) every test skips; with EMOEDGE_REQUIRE_GPU=1 such a skip is a failure. Run on a GPU machine with
`make gpu-check`, or:  EMOEDGE_REQUIRE_GPU=1 python -m pytest -q tests/gpu/test_gpu_graphs.py
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import assert_outputs_close  # type: ignore[import-not-found]

from emoedge.backends import Backend, load_model
from emoedge.backends import onnxruntime as ort_backend
from emoedge.backends import torch as torch_backend
from emoedge.backends.base import bucket
from emoedge.bench.models import random_checkpoint
from emoedge.export.onnx import example_inputs, export_onnx, spread
from emoedge.export.targets import Persons, Target
from emoedge.export.tensorrt import build_engine

pytestmark = pytest.mark.gpu

# Graphs replay eager's kernels, but a padded bucket may choose other cuDNN algorithms or TensorRT tactics than the
# unpadded call, so rounding differs: FP16 within the bound of test_gpu_paths.py (activations rounded to FP16 through
# the network); FP32 with TF32 convolutions (~1e-3 relative a layer); VAD is a regression output of a few units.
FP16_TOLERANCE = {"scores": 3e-2, "modality_weights": 3e-2, "vad": 2e-1}
FP32_TOLERANCE = {"scores": 2e-3, "modality_weights": 2e-3, "vad": 1e-2}
PERSONS = range(1, 21)
FRAMES = range(1, 4)
ENGINE_PERSONS = Persons(1, 4, PERSONS.stop - 1)


@dataclass(frozen=True)
class Graphed:
    """A model file as one backend runs it: `load(cuda_graphs)`, its tolerance against eager and its bucket bounds."""

    load: Callable[[str], Backend]
    tolerance: dict[str, float]
    max_frames: int
    max_persons: int


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    return random_checkpoint(tmp_path_factory.mktemp("graphs") / "model.pt", "sample", seed=0)


@pytest.fixture(scope="module", params=["torch", "onnxruntime", "tensorrt"])
def graphed(request: pytest.FixtureRequest, checkpoint: Path) -> Graphed:
    folder = checkpoint.parent
    if request.param == "torch":
        return Graphed(lambda graphs: load_model(checkpoint, device="cuda", precision="fp16", cuda_graphs=graphs),
                       FP16_TOLERANCE, torch_backend.GRAPH_FRAMES, torch_backend.GRAPH_PERSONS)  # fmt: skip
    onnx_path = folder / "model.onnx"
    if not onnx_path.exists():
        export_onnx(checkpoint, onnx_path)
    if request.param == "onnxruntime":
        import onnxruntime as ort

        if ort_backend.CUDA not in ort.get_available_providers():
            pytest.skip("this onnxruntime build has no CUDAExecutionProvider (onnxruntime-gpu is needed)")
        return Graphed(lambda graphs: load_model(onnx_path, device="cuda", cuda_graphs=graphs),
                       FP32_TOLERANCE, ort_backend.GRAPH_FRAMES, ort_backend.GRAPH_PERSONS)  # fmt: skip
    pytest.importorskip("tensorrt", reason="needs TensorRT's Python bindings (module tensorrt)")
    target = Target(persons=ENGINE_PERSONS, precision="fp16", workspace_mib=1024, streams=FRAMES.stop - 1, name="t")
    engine = build_engine(onnx_path, target, folder / "model.engine").path
    return Graphed(lambda graphs: load_model(engine, cuda_graphs=graphs), FP16_TOLERANCE, FRAMES.stop - 1,
                   ENGINE_PERSONS.max)  # fmt: skip


def test_cuda_graphs_give_eager_outputs_with_one_graph_per_bucket_met(graphed):
    eager, graphs = graphed.load("off"), graphed.load("auto")  # auto: graphs on CUDA
    assert "CUDA graphs per shape bucket" in graphs.reason, graphs.reason  # else the reason says why not
    assert graphs.bucketed and not eager.bucketed and "eager" in eager.reason
    shapes = [(n, f) for f in FRAMES for n in PERSONS]
    assert_outputs_close(graphs, eager, graphed.tolerance, shapes)
    buckets = {(bucket(f, graphed.max_frames), bucket(n, graphed.max_persons)) for n, f in shapes}
    assert graphs.graph_shapes == sorted(buckets)
    assert_outputs_close(graphs, eager, graphed.tolerance, shapes[::-7])  # replays, in another order: this call's


def test_warming_captures_every_bucket_and_cuda_inputs_replay_what_host_inputs_do(graphed):
    graphs = graphed.load("on")
    top_frames, top_persons = FRAMES.stop - 1, PERSONS.stop - 1
    calls, _ = graphs.warm(top_frames, top_persons)
    warmed = sorted(graphs.warm_shapes(top_frames, top_persons))
    assert calls == len(warmed) and graphs.graph_shapes == warmed
    assert_outputs_close(graphs, graphed.load("off"), graphed.tolerance, [(n, f) for f in FRAMES for n in (1, 5, 20)])
    image, body = example_inputs(graphs.card, 6, seed=6, frames=2)
    frame = spread(6, 2)
    on_host = graphs.infer(image.numpy(), body.numpy(), frame.numpy())
    on_gpu = graphs.infer(image.cuda(), body.cuda().to(memory_format=torch.channels_last), frame)
    for key, value in on_host.items():
        np.testing.assert_array_equal(on_gpu[key], value, err_msg=key)
    assert graphs.graph_shapes == warmed  # nothing captured after the warm-up


def test_compile_on_cuda_gives_eager_outputs(checkpoint):
    """torch.compile "reduce-overhead" (inductor's kernels in its own CUDA graphs) at one bucket: tens of seconds."""
    eager = load_model(checkpoint, device="cuda", precision="fp16", cuda_graphs="off")
    compiled = load_model(checkpoint, device="cuda", precision="fp16", compile=True)
    assert compiled.reason.endswith("torch.compile (reduce-overhead)") and compiled.graph_shapes == []
    assert_outputs_close(compiled, eager, FP16_TOLERANCE, [(8, 1), (5, 1)])  # N = 5 replays the N = 8 bucket
