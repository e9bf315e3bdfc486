"""TensorRT backend: sidecar checked first, one-line errors and, with TensorRT and a CUDA GPU, parity with ONNX Runtime.

CI has neither TensorRT nor a GPU: the tests that build and run an engine skip there (TensorRT is never faked). The
ones that do run check what happens before TensorRT is touched: sidecar, device and precision arguments, and the
message when TensorRT is missing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_helpers import BODY_CARD, engine_info  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.backends.tensorrt import TensorRTBackend, graphs_off, max_input_shapes, output_shape
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import example_inputs, export_onnx
from emoedge.export.targets import Persons, Target
from emoedge.export.tensorrt import build_engine
from emoedge.formats.engine import sidecar_path, write_engine_info
from emoedge.formats.tensorrt import INSTALL_HINT

# TensorRT runs FP32 convolutions in TF32 by default (10-bit mantissa products), so the FP32 engine is compared with
# ONNX Runtime's exact FP32 more loosely than FP32 backends are with each other; VAD is on a 1..10 scale.
TOLERANCE = {"scores": 2e-2, "modality_weights": 2e-2, "vad": 1e-1}
PERSONS = Persons(1, 2, 5)
CARD = BODY_CARD


def fake_engine(tmp_path: Path, **kwargs) -> Path:
    """An engine file (bytes, not an engine) with a valid sidecar: enough for everything checked before TensorRT."""
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 64)
    write_engine_info(engine, engine_info(CARD, engine_bytes=64, **kwargs))
    return engine


def test_missing_sidecar_is_checked_first(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 64)
    with pytest.raises(EmoedgeError, match=r"no sidecar m\.engine\.json .*`emoedge export engine`"):
        TensorRTBackend(engine)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp32"}, "precision 'fp32': engine .* was built for fp16"),
        ({"device": "cpu"}, "device 'cpu': the tensorrt backend runs on auto or cuda\\[:K\\]"),
        ({"device": "cuda:x"}, "device 'cuda:x'"),
    ],
)
def test_arguments_are_checked_before_tensorrt(tmp_path, kwargs, message):
    with pytest.raises(EmoedgeError, match=message):
        TensorRTBackend(fake_engine(tmp_path), **kwargs)


@pytest.mark.parametrize(
    ("dla_core", "cuda_graphs", "message"),
    [
        (None, "sometimes", r"cuda_graphs 'sometimes': expected one of \['auto', 'on', 'off'\]"),
        (0, "on", r"cuda_graphs 'on': CUDA graphs need a CUDA device; engine .*m\.engine runs on a DLA core"),
    ],
)
def test_graph_options_an_engine_cannot_take_are_one_line_before_tensorrt(tmp_path, dla_core, cuda_graphs, message):
    with pytest.raises(EmoedgeError, match=message) as caught:
        TensorRTBackend(fake_engine(tmp_path, dla_core=dla_core), cuda_graphs=cuda_graphs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("cuda_graphs", "dla_core", "words"),
    [("off", None, "cuda_graphs off"), ("auto", 1, "DLA core 1: no CUDA graphs"), ("off", 0, "cuda_graphs off")],
)
def test_the_reason_says_why_an_engine_runs_without_graphs(cuda_graphs, dla_core, words):
    assert graphs_off(cuda_graphs, dla_core) == words


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt(tmp_path):
    with pytest.raises(EmoedgeError) as caught:
        TensorRTBackend(fake_engine(tmp_path))
    assert str(caught.value) == INSTALL_HINT


def test_importing_the_backend_imports_no_tensorrt():
    code = "import sys, emoedge.backends.tensorrt; print('tensorrt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_runtime_shaped_input_is_set_at_the_profile_maximum_before_outputs_are_sized():
    """Outputs are read after `image`, `body` and (multi-frame engines) `frame` are set: unset, TensorRT may report
    -1 for them. The image is at the profile's maximum F, body and frame at its maximum N."""
    card = CARD  # image 32x32, body 32x32
    assert max_input_shapes(card, 16, 4, has_frame=True) == {
        "image": (4, 3, 32, 32),
        "body": (16, 3, 32, 32),
        "frame": (16,),
    }
    assert max_input_shapes(card, 5, 1, has_frame=False) == {"image": (1, 3, 32, 32), "body": (5, 3, 32, 32)}


def test_an_output_shape_left_unknown_is_one_line_naming_it():
    shapes = max_input_shapes(CARD, 16, 4, has_frame=True)
    assert output_shape(Path("m.engine"), "scores", [16, 26], shapes) == (16, 26)
    with pytest.raises(EmoedgeError) as caught:
        output_shape(Path("m.engine"), "scores", (-1, 26), shapes)
    text = str(caught.value)
    assert text.startswith("engine m.engine: output 'scores' has shape [-1, 26] with every input at its profile max")
    assert "frame [16]" in text and "`emoedge export engine`" in text and "\n" not in text


# --- real engines: TensorRT and a CUDA GPU only ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(onnx, engine): the sample recipe's model with VAD, exported and built as an FP32 engine for N in 1..5."""
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    root = tmp_path_factory.mktemp("tensorrt")
    onnx_path = export_onnx(random_checkpoint(root / "m.pt", seed=2, vad=True), root / "m.onnx").path
    target = Target(persons=PERSONS, precision="fp32", workspace_mib=512, name="test")
    return onnx_path, build_engine(onnx_path, target, root / "m.engine").path


@pytest.fixture(scope="module")
def engines(built) -> dict[str, object]:
    onnx_path, engine = built
    return {"tensorrt": load_model(engine), "onnxruntime": load_model(onnx_path, device="cpu")}


@pytest.mark.gpu
@pytest.mark.parametrize("persons", [1, 3, PERSONS.max])
def test_engine_agrees_with_onnxruntime(engines, persons):
    trt_backend, ort_backend = engines["tensorrt"], engines["onnxruntime"]
    assert isinstance(trt_backend, TensorRTBackend) and trt_backend.precision == "fp32"
    image, body = example_inputs(trt_backend.card, persons, seed=persons)
    expected, got = ort_backend.infer(image.numpy(), body.numpy()), trt_backend.infer(image.numpy(), body.numpy())
    assert set(got) == set(expected) == {"scores", "modality_weights", "vad"}
    for key, value in expected.items():
        assert got[key].dtype == np.float32 and got[key].shape == value.shape
        np.testing.assert_allclose(got[key], value, rtol=0, atol=TOLERANCE[key], err_msg=key)


@pytest.mark.gpu
def test_cuda_and_channels_last_inputs(engines):
    backend = engines["tensorrt"]
    image, body = example_inputs(backend.card, 2)
    reference = backend.infer(image.numpy(), body.numpy())
    got = backend.infer(image.cuda(), body.cuda().to(memory_format=torch.channels_last))
    for key in reference:
        np.testing.assert_array_equal(got[key], reference[key], err_msg=key)
    assert "TensorRT" in backend.reason and backend.device.startswith("cuda:")


@pytest.mark.gpu
def test_frames_beyond_the_profile_run_in_slices(engines):
    """More persons than the profile's maximum: several engine calls, the same outputs as ONNX Runtime's."""
    trt_backend, ort_backend = engines["tensorrt"], engines["onnxruntime"]
    image, body = example_inputs(trt_backend.card, 2 * PERSONS.max + 1)
    got, expected = trt_backend.infer(image, body), ort_backend.infer(image.numpy(), body.numpy())
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=TOLERANCE[key], err_msg=key)
    empty = trt_backend.infer(image, body[:0])
    assert empty["scores"].shape == (0, 26)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tensorrt", "0.0.1", r"built with TensorRT 0\.0\.1"),
        ("gpu", {"name": "Another GPU", "compute_capability": [1, 0]}, r"built for 'Another GPU' \(compute capability"),
    ],
)
@pytest.mark.gpu
def test_engine_from_elsewhere_is_refused(built, tmp_path, field, value, message):
    engine = tmp_path / "m.engine"
    engine.write_bytes(built[1].read_bytes())
    data = json.loads(sidecar_path(built[1]).read_text())
    data[field] = value
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(EmoedgeError, match=message):
        load_model(engine)


@pytest.mark.gpu
def test_multi_frame_version_compatible_engine_loads_and_agrees_with_onnxruntime(built, tmp_path):
    """F up to 3 per call (`frame` must be set before the outputs are sized) and BuilderFlag.VERSION_COMPATIBLE (the
    runtime must allow the plan's lean runtime): both load and give ONNX Runtime's outputs."""
    onnx_path = built[0]
    target = Target(persons=PERSONS, precision="fp32", workspace_mib=512, streams=3, version_compatible=True)
    result = build_engine(onnx_path, target, tmp_path / "vc.engine")
    assert result.info.version_compatible and result.info.frames == (1, 3, 3) and result.info.has_frame
    assert "--versionCompatible" in result.trtexec
    backend, reference = load_model(result.path), load_model(onnx_path, device="cpu")
    assert backend.max_frames == 3 and backend.outputs["scores"].shape == (PERSONS.max, 26)
    image, body = example_inputs(backend.card, 7, seed=7, frames=3)
    frame = np.arange(7) % 3
    got, expected = backend.infer(image, body, frame), reference.infer(image.numpy(), body.numpy(), frame)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=TOLERANCE[key], err_msg=key)
