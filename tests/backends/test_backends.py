"""Backends: one interface, chosen by file type; PyTorch and ONNX Runtime agree; errors are one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from model_helpers import legacy_onnx  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.backends.onnxruntime import OnnxRuntimeBackend
from emoedge.backends.torch import TorchBackend, cpu_bf16_feature
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import example_inputs, export_onnx

FP32_TOLERANCE = 1e-4
# BF16 keeps 8 bits of mantissa; measured max |Δ| vs FP32: scores 4e-3, modality weights 1e-3, VAD (1..10) 1.6e-2.
BF16_TOLERANCE = {"scores": 2e-2, "modality_weights": 1e-2, "vad": 5e-2}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, onnx) of a three-branch attention model with VAD, random weights with spread-out logits."""
    root = tmp_path_factory.mktemp("backends")
    checkpoint = random_checkpoint(root / "model.pt", seed=1)
    return checkpoint, export_onnx(checkpoint, root / "model.onnx").path


@pytest.fixture(scope="module")
def backends(model_files) -> dict[str, object]:
    checkpoint, onnx_path = model_files
    return {
        "torch": load_model(checkpoint, device="cpu", precision="fp32"),
        "onnxruntime": load_model(onnx_path, device="cpu"),
    }


def test_backend_is_chosen_by_file_type(backends):
    assert isinstance(backends["torch"], TorchBackend) and backends["torch"].name == "torch"
    assert isinstance(backends["onnxruntime"], OnnxRuntimeBackend)
    assert "CPUExecutionProvider" in backends["onnxruntime"].reason
    assert backends["onnxruntime"].device == "cpu" and backends["onnxruntime"].precision == "fp32"


def test_importing_backends_loads_no_optional_dependency():
    heavy = "{'torch', 'onnxruntime', 'onnx', 'tensorrt', 'openvino'}"
    code = f"import sys, emoedge.backends; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("persons", [1, 3, 16])
def test_torch_and_onnxruntime_agree_in_fp32(backends, persons):
    image, body = example_inputs(backends["torch"].card, persons, seed=persons)
    a = backends["torch"].infer(image, body)
    b = backends["onnxruntime"].infer(image.numpy(), body.numpy())
    assert set(a) == set(b) == {"scores", "modality_weights", "vad"}
    for key in a:
        assert a[key].dtype == b[key].dtype == np.float32 and a[key].shape == (persons, 26 if key == "scores" else 3)
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=FP32_TOLERANCE, err_msg=key)


def test_bf16_on_cpu_is_close_to_fp32(model_files, backends):
    bf16 = load_model(model_files[0], device="cpu", precision="bf16")
    assert bf16.precision == "bf16" and "channels_last" in bf16.reason
    image, body = example_inputs(bf16.card, 8, seed=7)
    reference, got = backends["torch"].infer(image, body), bf16.infer(image, body)
    assert np.ptp(reference["scores"]) > 0.5  # scores spread over 0..1, not all near 0.5
    for key, tolerance in BF16_TOLERANCE.items():
        np.testing.assert_allclose(got[key], reference[key], rtol=0, atol=tolerance, err_msg=key)


def test_a_checkpoint_runs_as_trained_unless_asked_and_the_reason_names_the_faster_precision(model_files):
    backend = load_model(model_files[0], device="cpu")
    feature = cpu_bf16_feature()
    assert backend.precision == "fp32" and "a checkpoint runs as trained" in backend.reason
    assert (
        f"--precision bf16 is faster on this CPU's {feature}" if feature else "no AMX or AVX512-BF16"
    ) in backend.reason


def test_card_travels_with_the_onnx_file(backends):
    card = backends["onnxruntime"].card
    assert card == backends["torch"].card
    assert len(card.categories) == 26 and card.thresholds[0] == pytest.approx(0.2)
    assert card.image_size == (96, 96) and card.body_size == (64, 64) and len(card.mean) == len(card.std) == 3


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_no_persons_gives_empty_outputs(backends, name):
    image, body = example_inputs(backends[name].card, 1)
    out = backends[name].infer(image, body[:0])
    assert {k: v.shape for k, v in out.items()} == {"scores": (0, 26), "modality_weights": (0, 3), "vad": (0, 3)}


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
@pytest.mark.parametrize(
    ("image_shape", "body_shape", "message"),
    [
        ((2, 3, 96, 96), (2, 3, 64, 64), r"input 'frame': missing; with 2 frames each person's frame index"),
        ((1, 3, 64, 96), (2, 3, 64, 64), r"input 'image': shape \[1, 3, 64, 96\] received, expected \[F, 3, 96, 96\]"),
        ((1, 3, 96, 96), (2, 3, 32, 64), r"input 'body': shape \[2, 3, 32, 64\] received, expected \[N, 3, 64, 64\]"),
        ((1, 3, 96, 96), (3, 64, 64), r"input 'body': shape \[3, 64, 64\] received"),
        ((3, 96, 96), (2, 3, 64, 64), r"input 'image': shape \[3, 96, 96\] received"),
    ],
)
def test_wrong_input_shape_is_named(backends, name, image_shape, body_shape, message):
    with pytest.raises(EmoedgeError, match=message):
        backends[name].infer(np.zeros(image_shape, np.float32), np.zeros(body_shape, np.float32))


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
@pytest.mark.parametrize(
    ("frame", "message"),
    [([0, 2], r"indices 0..2, expected 0..1"), ([0], r"int64 \[1\] received, expected int \[2\]"),
     ([0.0, 1.0], r"float64 \[2\] received")],
)  # fmt: skip
def test_wrong_frame_indices_are_named(backends, name, frame, message):
    image, body = example_inputs(backends[name].card, 2, frames=2)
    with pytest.raises(EmoedgeError, match=rf"input 'frame': {message}"):
        backends[name].infer(image.numpy(), body.numpy(), np.asarray(frame))


def test_several_frames_in_one_call_equal_one_call_per_frame(backends, model_files, tmp_path):
    """F frames with their persons (as several streams' frames): each person's outputs are those of its own
    frame run alone, in the one-call graph and in a legacy single-frame file (run frame by frame)."""
    legacy = OnnxRuntimeBackend(legacy_onnx(model_files[0], tmp_path / "legacy.onnx"), device="cpu")
    assert legacy.max_frames == 1 and backends["onnxruntime"].max_frames is None
    image, body = example_inputs(legacy.card, 7, seed=3, frames=3)
    frame = np.array([2, 0, 1, 2, 0, 2, 1])
    for backend in (backends["torch"], backends["onnxruntime"], legacy):
        image_in, body_in = (image, body) if backend.name == "torch" else (image.numpy(), body.numpy())
        together = backend.infer(image_in, body_in, frame)
        for f in range(3):
            alone = backend.infer(image_in[f : f + 1], body_in[frame == f])
            for key, value in alone.items():
                np.testing.assert_allclose(together[key][frame == f], value, rtol=0, atol=FP32_TOLERANCE)


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("model.txt", b"hello", {}, r"unknown model file type '\.txt'"),
        ("model", b"hello", {}, r"unknown model file type '\(no suffix\)'"),
        ("model.onnx", b"this is not onnx" * 20, {}, "not a readable ONNX file"),
        ("model.pt", b"PK\x03\x04 not a checkpoint", {}, "truncated or corrupt torch file"),
        ("model.onnx", b"x", {"backend": "torch"}, r"backend 'torch' reads \.pt/\.pth files"),
        ("model.onnx", b"x", {"backend": "ncnn"}, "backend 'ncnn': unknown"),
    ],
)
def test_file_of_the_wrong_kind_is_one_line(tmp_path, name, content, kwargs, message):
    path = write(tmp_path / name, content)
    with pytest.raises(EmoedgeError, match=message) as info:
        load_model(path, **kwargs)
    assert "\n" not in str(info.value)


def test_foreign_onnx_is_refused(tmp_path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [x])
    path = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(EmoedgeError, match="foreign.onnx: not produced by emoedge"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(EmoedgeError, match="file not found"):
        load_model(tmp_path / "nowhere.onnx")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_engine_without_tensorrt(tmp_path):
    with pytest.raises(EmoedgeError, match="TensorRT is not installed"):
        load_model(write(tmp_path / "model.engine", b"\0" * 64))


@pytest.mark.parametrize(
    ("which", "kwargs", "message"),
    [
        (0, {"device": "cpu", "precision": "fp16"}, "FP16 on CUDA only"),
        (0, {"device": "tpu"}, "device 'tpu'"),
        (0, {"precision": "fp8"}, "precision 'fp8'"),
        (1, {"device": "cpu", "precision": "fp16"}, "is a fp32 graph"),
        (1, {"device": "gpu"}, "device 'gpu'"),
    ],
)
def test_unsupported_device_or_precision(model_files, which, kwargs, message):
    with pytest.raises(EmoedgeError, match=message):
        load_model(model_files[which], **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda(model_files):
    with pytest.raises(EmoedgeError, match="CUDA is not available"):
        load_model(model_files[0], device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda_is_close_to_fp32(model_files, backends):
    assert load_model(model_files[0], device="cuda").precision == "fp32"  # as trained, unless asked
    fp16 = load_model(model_files[0], device="cuda", precision="fp16")
    assert fp16.precision == "fp16" and fp16.device == "cuda"
    image, body = example_inputs(fp16.card, 4)
    reference, got = backends["torch"].infer(image, body), fp16.infer(image.cuda(), body.cuda())
    for key in reference:
        np.testing.assert_allclose(got[key], reference[key], rtol=0, atol=1e-2 if key != "vad" else 5e-2, err_msg=key)
