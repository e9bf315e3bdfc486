"""How ONNX Runtime runs an ONNX file with CUDA graphs (`cuda_graphs`): on its CUDA provider only, one graph per
(F, N) shape bucket in one session, selected by the `gpu_graph_id` run option; the rules, the provider options, the
graph ids, the refusals in one line and ONNX Runtime's own refusal of graphs.

Capturing and replaying need a GPU and onnxruntime-gpu's CUDA provider: tests/gpu/test_gpu_graphs.py compares
them with eager calls there. Nothing here pretends to have either.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from model_helpers import one_line  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.backends.base import bucket
from emoedge.backends.onnxruntime import (
    CPU,
    CUDA,
    TENSORRT,
    OnnxRuntimeBackend,
    _provider_options,
    cuda_graph_options,
    cuda_note,
    graph_ids,
    graph_refusal,
    session_providers,
    wants_graphs,
)
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import export_onnx

# ONNX Runtime's refusals of `enable_cuda_graph` as Python sees them (inference_session.cc, before and after the
# wording changed), and an error that is not one
NOT_ON_CUDA = (
    "[ONNXRuntimeError] : 1 : FAIL : This session cannot use the CUDA Graph feature as requested by the user  as all "
    "compute graph nodes have not been partitioned to the CUDA EP."
)
CONTROL_FLOW = (
    "[ONNXRuntimeError] : 1 : FAIL : This session cannot use the graph capture feature as requested by the user as "
    "the model has control flow nodes which can't be supported by CUDAExecutionProvider"
)
INVALID = "[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. Error in Node:conv"


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ort-graphs")
    return export_onnx(random_checkpoint(root / "model.pt", seed=1), root / "model.onnx").path


@pytest.mark.parametrize("cuda_graphs", ["auto", "off"])
def test_the_cpu_provider_runs_unbucketed_whatever_auto_or_off(onnx_file, cuda_graphs):
    backend = load_model(onnx_file, device="cpu", cuda_graphs=cuda_graphs)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.reason.endswith("intra-op threads")
    assert "CUDA graphs" not in backend.reason
    assert not backend.bucketed and backend.max_frames is None and backend.max_persons is None
    assert backend.graph_shapes == []
    assert backend.warm_shapes(3, 20) == [(3, 1)]  # one call sets a dynamic-shape runtime up: nothing bucketed


@pytest.mark.parametrize(
    ("cuda_graphs", "needles"),
    [
        (
            "on",
            [
                "cuda_graphs 'on': CUDA graphs need a CUDA device",
                "runs this model on its CPUExecutionProvider",
                "use 'auto' or 'off'",
            ],
        ),
        ("sometimes", ["cuda_graphs 'sometimes': expected one of ['auto', 'on', 'off']"]),
    ],
)
def test_graphs_on_or_a_bad_value_with_the_cpu_provider_isone_line(onnx_file, cuda_graphs, needles):
    for load in (load_model, OnnxRuntimeBackend):
        with pytest.raises(EmoedgeError) as exc:
            load(onnx_file, device="cpu", cuda_graphs=cuda_graphs)
        message = one_line(exc)
        assert all(needle in message for needle in needles), message


@pytest.mark.parametrize(
    ("cuda_graphs", "provider", "graphs"),
    [
        ("auto", CUDA, True),
        ("on", CUDA, True),
        ("off", CUDA, False),
        ("auto", TENSORRT, False),  # one graph per session there, not one per bucket
        ("off", TENSORRT, False),
        ("auto", CPU, False),
        ("off", CPU, False),
    ],
)
def test_graphs_are_captured_on_the_cuda_provider_unless_off(cuda_graphs, provider, graphs):
    assert wants_graphs(cuda_graphs, provider) is graphs


def test_graphs_on_with_the_tensorrt_provider_is_one_line_naming_the_cuda_device():
    with pytest.raises(EmoedgeError) as exc:
        wants_graphs("on", TENSORRT)
    message = one_line(exc)
    assert message.startswith("cuda_graphs 'on': emoedge captures CUDA graphs on ONNX Runtime's CUDA provider")
    assert message.endswith("use device 'cuda'")


def test_cuda_provider_options_with_graphs_carry_enable_cuda_graph_and_only_there(onnx_file):
    _, options = _provider_options(CUDA, 1, "auto", "fp32", onnx_file)
    graphed = cuda_graph_options(options)
    assert graphed == {"device_id": "1", "enable_cuda_graph": "1"} and options == {"device_id": "1"}
    available = [TENSORRT, CUDA, CPU]
    assert session_providers(CUDA, graphed, available, 1) == [(CUDA, graphed), CPU]
    assert session_providers(CUDA, options, available, 1) == [(CUDA, {"device_id": "1"}), CPU]
    # The TensorRT provider's chain hands its fallback CUDA provider the device only: never graphs.
    trt = {"device_id": "0", "trt_engine_cache_enable": "True"}
    assert session_providers(TENSORRT, trt, available, 0) == [(TENSORRT, trt), (CUDA, {"device_id": "0"}), CPU]


def test_every_bucket_a_call_is_padded_to_has_a_unique_stable_graph_id_from_1():
    ids = graph_ids()
    shapes = {(bucket(f, 4), bucket(n, 32)) for f, n in itertools.product(range(1, 5), range(1, 33))}
    assert set(ids) == shapes and len(ids) == 3 * 6  # F in 1, 2, 4; N in 1, 2, ..., 32: 18 graphs at most
    assert sorted(ids.values()) == list(range(1, len(ids) + 1))  # 0 is ONNX Runtime's default graph, -1 "none"
    assert graph_ids() == ids and ids[1, 1] == 1 and ids[4, 32] == 18  # the same id for the same bucket each time
    assert set(graph_ids(1)) == {(1, n) for n in (1, 2, 4, 8, 16, 32)}  # files without `frame`: one frame a call


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        (NOT_ON_CUDA, "all compute graph nodes have not been partitioned to the CUDA EP"),
        (CONTROL_FLOW, "the model has control flow nodes which can't be supported by CUDAExecutionProvider"),
        (INVALID, None),
        ("", None),
    ],
)
def test_onnx_runtimes_refusal_of_graphs_is_told_apart_and_shortened(message, refusal):
    assert graph_refusal(message) == refusal


def test_reason_says_graphs_per_bucket_their_refusal_or_eager():
    assert cuda_note(True, None) == "CUDA graphs per shape bucket (<= 4 frames x 32 persons a call)"
    refused = graph_refusal(NOT_ON_CUDA)
    assert cuda_note(False, refused) == (
        "CUDA graphs off: ONNX Runtime refused them (all compute graph nodes have not been partitioned to the CUDA EP)"
    )
    assert cuda_note(False, None) == "eager"
