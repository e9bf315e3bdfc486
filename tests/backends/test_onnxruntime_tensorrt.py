"""ONNX Runtime's TensorRT provider as the backend configures it (issue 23, faults 1, 2 and 4), tested on CPU.

Why the pure functions and not a session: the provider needs a GPU and TensorRT. What the backend passes to it
(the engine cache prefix, the profile, the precision flags per TensorRT version) and what it then reports and
publishes (precision, person bounds) are computed by functions tested here; building and running the engines is
for tests/gpu.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from runtime.runtime_media import tiny_card  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.backends.base import person_batches
from emoedge.backends.onnxruntime import (
    CPU,
    CUDA,
    PERSONS_PROFILE,
    TENSORRT,
    _provider_options,
    engine_cache_prefix,
    infer_lib_version,
    persons_bounds,
    tensorrt_note,
    tensorrt_options,
)
from emoedge.errors import EmoedgeError
from emoedge.formats.onnx import CARD_KEY, FORMAT, FORMAT_KEY

CARD = tiny_card()
FP16, INT8 = "trt_fp16_enable", "trt_int8_enable"


def _onnx(path: Path, seed: int) -> Path:
    """An emoedge ONNX file of one fixed graph (body → mean colour → scores) whose weights come from `seed`:
    a "retraining" changes the weights only, as a retrained model of the same recipe does."""
    weights = np.random.default_rng(seed).normal(size=(3, 26)).astype(np.float32)
    h, w = CARD.image_size
    bh, bw = CARD.body_size
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["body", "axes"], ["colour"], keepdims=0),
            helper.make_node("MatMul", ["colour", "weights"], ["scores"]),
        ],
        "emo",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["F", 3, h, w]),
            helper.make_tensor_value_info("body", TensorProto.FLOAT, ["N", 3, bh, bw]),
            helper.make_tensor_value_info("frame", TensorProto.INT64, ["N"]),
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 26])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"), numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {CARD_KEY: CARD.to_json(), FORMAT_KEY: FORMAT})
    onnx.save(model, str(path))
    return path


def _graph_bytes(path: Path) -> bytes:
    """The serialized ONNX as the backend loads it and hands it to ONNX Runtime."""
    return onnx.load(str(path), load_external_data=False).SerializeToString()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ort-trt")
    return {"first": _onnx(root / "first.onnx", 1), "retrained": _onnx(root / "retrained.onnx", 2)}


# Fault 1: engines of a retrained model must not be found under the first model's name.


def test_a_retrained_model_of_the_same_graph_gets_its_own_engine_prefix(models):
    first, retrained = onnx.load(str(models["first"])), onnx.load(str(models["retrained"]))
    assert first.graph.node == retrained.graph.node and first.graph.input == retrained.graph.input  # same names
    assert first.graph.initializer != retrained.graph.initializer
    prefixes = {engine_cache_prefix(_graph_bytes(p), "fp16") for p in models.values()}
    assert len(prefixes) == 2


def test_the_same_model_loaded_again_finds_its_engines_under_the_same_prefix(models, tmp_path):
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(models["first"].read_bytes())
    assert engine_cache_prefix(_graph_bytes(models["first"]), "fp32") == engine_cache_prefix(_graph_bytes(copy), "fp32")


def test_the_precision_that_runs_is_part_of_the_prefix(models):
    graph = _graph_bytes(models["first"])
    assert len({engine_cache_prefix(graph, p) for p in ("fp32", "fp16", "int8")}) == 3


def test_the_prefix_is_made_of_file_name_characters(models):
    prefix = engine_cache_prefix(_graph_bytes(models["first"]), "fp16")
    assert re.fullmatch(r"emoedge_[0-9a-f]{16}_fp16", prefix), prefix


def test_the_tensorrt_options_the_backend_passes_carry_the_prefix_and_the_profile(models, tmp_path):
    graph = _graph_bytes(models["first"])
    precision, options = _provider_options(TENSORRT, 0, "auto", "fp32", models["first"], "10.3.0")
    prefix = engine_cache_prefix(graph, precision)
    options |= tensorrt_options(CARD, has_frame=True, cache_dir=tmp_path, prefix=prefix)
    assert options["trt_engine_cache_prefix"] == prefix == engine_cache_prefix(graph, "fp16")
    assert options["trt_engine_cache_enable"] == "True" and options["trt_engine_cache_path"] == str(tmp_path)
    # The timing cache holds kernel timings per GPU, not per model: shared, and its file name has no prefix.
    assert options["trt_timing_cache_path"] == str(tmp_path)
    low, high = PERSONS_PROFILE[0], PERSONS_PROFILE[-1]
    assert options["trt_profile_min_shapes"] == f"image:1x3x96x96,body:{low}x3x64x64,frame:{low}"
    assert options["trt_profile_max_shapes"] == f"image:4x3x96x96,body:{high}x3x64x64,frame:{high}"


# Fault 2: N above the TensorRT provider's profile is run in slices of it.


def test_the_tensorrt_provider_bounds_persons_by_its_profile():
    low, high = persons_bounds(TENSORRT)
    assert (low, high) == (PERSONS_PROFILE[0], PERSONS_PROFILE[-1])
    # 4 streams × 10 persons: two calls within the profile instead of one TensorRT refuses.
    assert [size for _, _, size in person_batches(40, low, high)] == [32, 8]


@pytest.mark.parametrize("provider", [CPU, CUDA])
def test_cpu_and_cuda_providers_take_any_number_of_persons(provider):
    assert persons_bounds(provider) == (1, None)


def test_a_cpu_backend_keeps_its_unbounded_persons_and_its_reason(models):
    backend = load_model(models["first"], device="cpu")
    assert (backend.min_persons, backend.max_persons) == (1, None)
    assert backend.precision == "fp32" and "TensorRT" not in backend.reason
    scores = backend.infer(np.zeros((1, 3, 96, 96), np.float32), np.ones((40, 3, 64, 64), np.float32))["scores"]
    assert scores.shape == (40, 26)


# Fault 4: precision flags per TensorRT version; what is reported is what runs.

WEAK, STRONG = ["10.3.0", "10.11.0"], ["10.12.0", "11.0.0", None]  # None: the version cannot be told
# (stored, requested) -> (precision reported, flags set); None: a one-line error.
WEAK_TABLE = {
    ("fp32", "auto"): ("fp16", {FP16}),
    ("fp32", "fp16"): ("fp16", {FP16}),
    ("fp32", "fp32"): ("fp32", set()),
    ("fp32", "int8"): None,
    ("fp16", "auto"): ("fp16", set()),
    ("fp16", "fp16"): ("fp16", set()),
    ("fp16", "fp32"): None,
    ("fp16", "int8"): None,
    ("int8", "auto"): ("int8", {INT8, FP16}),
    ("int8", "int8"): ("int8", {INT8, FP16}),
    ("int8", "fp16"): None,
    ("int8", "fp32"): None,
}
STRONG_TABLE = {
    ("fp32", "auto"): ("fp32", set()),
    ("fp32", "fp16"): None,
    ("fp32", "fp32"): ("fp32", set()),
    ("fp32", "int8"): None,
    ("fp16", "auto"): ("fp16", set()),
    ("fp16", "fp16"): ("fp16", set()),
    ("fp16", "fp32"): None,
    ("fp16", "int8"): None,
    ("int8", "auto"): ("int8", set()),
    ("int8", "int8"): ("int8", set()),
    ("int8", "fp16"): None,
    ("int8", "fp32"): None,
}
CASES = [(v, *key, want) for versions, table in ((WEAK, WEAK_TABLE), (STRONG, STRONG_TABLE))
         for v in versions for key, want in table.items()]  # fmt: skip


@pytest.mark.parametrize("version, stored, requested, want", CASES)
def test_tensorrt_provider_precision_and_flags_per_tensorrt_version(version, stored, requested, want):
    if want is None:
        with pytest.raises(EmoedgeError) as error:
            _provider_options(TENSORRT, 0, requested, stored, "m.onnx", version)
        message = str(error.value)
        assert "\n" not in message and f"m.onnx is a {stored} graph" in message
        assert f"TensorRT {version or 'of unknown version'}" in message
        assert f"make a {requested} ONNX with `emoedge export precision`" in message
        return
    precision, options = _provider_options(TENSORRT, 0, requested, stored, "m.onnx", version)
    reported, flags = want
    assert precision == reported
    assert options == {"device_id": "0", **dict.fromkeys(flags, "True")}


@pytest.mark.parametrize(
    "provider, stored, options",
    [(CPU, "fp32", {}), (CUDA, "fp32", {"device_id": "0"}), (CUDA, "int8", {"device_id": "0"})],
)
def test_cpu_and_cuda_providers_run_the_graph_as_stored_without_flags(provider, stored, options):
    assert _provider_options(provider, 0, "auto", stored, "m.onnx", "10.3.0") == (stored, options)
    with pytest.raises(EmoedgeError, match="or use device 'tensorrt' for FP16"):
        _provider_options(provider, 0, "fp16", stored, "m.onnx")


@pytest.mark.parametrize("code, version", [(100300, "10.3.0"), (101200, "10.12.0"), (110002, "11.0.2")])
def test_libnvinfer_version_codes_are_read_as_tensorrt_10_and_later_encode_them(code, version):
    assert infer_lib_version(code) == version


def test_the_reason_says_which_tensorrt_and_typing_run_or_that_the_version_is_unknown():
    _, weak = _provider_options(TENSORRT, 0, "auto", "int8", "m.onnx", "10.3.0")
    assert tensorrt_note("10.3.0", weak) == "TensorRT 10.3.0: weakly typed, INT8+FP16 flags"
    _, strong = _provider_options(TENSORRT, 0, "auto", "fp32", "m.onnx", "11.0.0")
    assert tensorrt_note("11.0.0", strong) == "TensorRT 11.0.0: strongly typed, as stored"
    assert tensorrt_note(None, {}).startswith("TensorRT of unknown version")
