"""Every GPU path, on a machine that has one: PyTorch FP16 and CUDA crops, an AMP training step, ONNX Runtime's CUDA
and TensorRT execution providers, and TensorRT engines in FP32, FP16 and INT8 — each compared with ONNX Runtime on
the CPU on the same inputs (stated tolerances) and on the sample test split's mAP (through the one evaluator).

Here (no GPU, no TensorRT) every test skips; with EMOEDGE_REQUIRE_GPU=1 every such skip is a failure. Run on a GPU
machine (desktop or Jetson) with:  EMOEDGE_REQUIRE_GPU=1 python -m pytest -q -m gpu
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gpu_policy import NOT_APPLICABLE  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.config import load_recipe
from emoedge.evaluation.evaluate import evaluate_model
from emoedge.export.onnx import example_inputs, export_onnx
from emoedge.export.targets import Persons, Target
from emoedge.resources import find

pytestmark = pytest.mark.gpu

PERSONS = Persons(1, 4, 8)
# Max |Δ| against ONNX Runtime FP32 on the CPU, per output. TensorRT's FP32 uses TF32 convolutions by default.
TOLERANCE = {
    "fp32": {"scores": 2e-2, "modality_weights": 2e-2, "vad": 1e-1},
    "fp16": {"scores": 3e-2, "modality_weights": 3e-2, "vad": 2e-1},
    "int8": {"scores": 1.5e-1, "modality_weights": 1.5e-1, "vad": 1.0},
}
MAP_DROP = {"fp32": 0.5, "fp16": 0.5, "int8": 3.0}  # points of sample test mAP against the FP32 ONNX


@pytest.fixture(scope="module")
def cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(scope="module")
def trt(cuda):
    return pytest.importorskip("tensorrt")


@pytest.fixture(scope="module")
def model(cuda, sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample recipe trained on the GPU with AMP (the AMP training step under test) and its ONNX files."""
    from emoedge.export.precision import to_fp16, to_int8
    from emoedge.training.trainer import train

    out = tmp_path_factory.mktemp("gpu")
    recipe = load_recipe(find("recipe", "sample"), ["run.device=cuda", "run.amp=true", "model.vad=true"])
    result = train(recipe, out / "run", data_root=sample_root, progress=False)
    assert np.isfinite(result.best_map) and result.best_map > 0.3, result
    onnx_path = export_onnx(result.best, out / "model.onnx").path
    return {
        "checkpoint": result.best,
        "fp32": onnx_path,
        "fp16": to_fp16(onnx_path, out / "model-fp16.onnx").path,
        "int8": to_int8(onnx_path, out / "model-int8.onnx", data=sample_root, max_images=32).path,
    }


def _compare(backend, reference, tolerance: dict[str, float]) -> None:
    for n in (1, 3, PERSONS.max):
        image, body = (t.numpy() for t in example_inputs(reference.card, n, seed=n))
        got, want = backend.infer(image, body), reference.infer(image, body)
        assert set(got) == set(want)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=0, atol=tolerance[key], err_msg=f"{key}, N={n}")


def _map_close(model_file: Path, reference_file: Path, root: Path, drop: float, **kwargs) -> None:
    got = evaluate_model(model_file, root, progress=False, **kwargs).m_ap
    want = evaluate_model(reference_file, root, device="cpu", progress=False).m_ap
    assert 100 * (want - got) <= drop, (got, want)


def test_pytorch_fp16_on_cuda(model, sample_root):
    backend = load_model(model["checkpoint"], device="cuda", precision="fp16")
    _compare(backend, load_model(model["fp32"], device="cpu"), TOLERANCE["fp16"])
    _map_close(model["checkpoint"], model["fp32"], sample_root, MAP_DROP["fp16"], device="cuda", precision="fp16")


def test_cuda_crops_match_the_cpu_crops(model):
    from emoedge.runtime.preprocess import Preprocessor

    card = load_model(model["fp32"], device="cpu").card
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    boxes = np.array([[10, 20, 200, 400], [300, 50, 420, 470], [500.5, 100.2, 639, 300.7]], np.float32)
    gpu, cpu = Preprocessor(card, "cuda"), Preprocessor(card, "cpu")
    assert gpu.crop_method == "roi_align" and cpu.crop_method == "cv2"
    a, b = gpu(frame, boxes), cpu(frame, boxes)
    assert a.body.device.type == "cuda" and a.body.shape == b.body.shape
    # Bilinear sampling against area resizing of the same pixels: close, not equal (normalised units).
    assert float((a.body.cpu() - b.body).abs().mean()) < 0.1
    torch.testing.assert_close(a.image.cpu(), b.image)


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_onnxruntime_gpu_providers(model, sample_root, device):
    import onnxruntime as ort

    provider = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[device]
    if provider not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime build has no {provider}")
    backend = load_model(model["fp32"], device=device, precision="fp32")
    assert backend.device.startswith("cuda") and provider in backend.reason
    _compare(backend, load_model(model["fp32"], device="cpu"), TOLERANCE["fp32"])
    _map_close(model["fp32"], model["fp32"], sample_root, MAP_DROP["fp32"], device=device, precision="fp32")


def _engine(trt, model: dict[str, Path], precision: str, tmp_path: Path, *, source: str | None = None) -> Path:
    from emoedge.export.tensorrt import build_engine

    onnx_path = model[source or precision]
    target = Target(persons=PERSONS, precision=precision, workspace_mib=1024, name=f"test-{precision}")
    result = build_engine(onnx_path, target, tmp_path / f"{precision}.engine")
    assert set(result.parity) == {PERSONS.min, PERSONS.max}
    assert max(result.parity.values()) <= TOLERANCE[precision]["scores"], result.parity_line
    return result.path


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engines_agree_with_onnxruntime(trt, model, sample_root, tmp_path, precision):
    from emoedge.formats.tensorrt import strongly_typed_build

    engine = _engine(trt, model, precision, tmp_path)
    backend = load_model(engine)
    assert backend.precision == precision
    assert backend.info.strongly_typed == strongly_typed_build(trt.__version__)
    _compare(backend, load_model(model["fp32"], device="cpu"), TOLERANCE[precision])
    _map_close(engine, model["fp32"], sample_root, MAP_DROP[precision])


def test_fp16_flag_engine_from_the_fp32_onnx_on_weakly_typed_tensorrt(trt, model, sample_root, tmp_path):
    from emoedge.formats.tensorrt import strongly_typed_build

    if strongly_typed_build(trt.__version__):
        pytest.skip(f"{NOT_APPLICABLE}TensorRT {trt.__version__} builds strongly typed only (the FP16 flag is 10.3's)")
    engine = _engine(trt, model, "fp16", tmp_path, source="fp32")
    backend = load_model(engine)
    assert backend.info.allowed_precisions == ("fp16", "fp32")
    _compare(backend, load_model(model["fp32"], device="cpu"), TOLERANCE["fp16"])
    _map_close(engine, model["fp32"], sample_root, MAP_DROP["fp16"])
