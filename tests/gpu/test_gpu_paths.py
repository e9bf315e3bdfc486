"""Every GPU path, on a machine that has one: PyTorch FP16 and CUDA crops, an AMP training step, ONNX Runtime's CUDA
and TensorRT execution providers (FP32, FP16 and INT8 graphs, N above the provider's profile, a retrained model in
the same engine cache) and TensorRT engines in FP32, FP16 and INT8, one and several frames per call — each compared
with ONNX Runtime on the CPU running the graph it was built from, on the same inputs (stated tolerances), and on the
sample test split's mAP (through the one evaluator).

What every target can make is made here: the FP32 ONNX of a random-weight checkpoint of the sample recipe (no
dataset, no training, no Model Optimizer). FP16 and INT8 ONNX come from Model Optimizer where it imports and works,
else from the small files made on x86 and shipped in tests/data/gpu (a Jetson: Model Optimizer is not in the JetPack
set). Each test gets a fresh ONNX Runtime engine cache (XDG_CACHE_HOME in its tmp_path), so a re-run never meets an
engine an earlier run left behind.

Here (no GPU, no TensorRT) every test skips, naming what is missing; with EMOEDGE_REQUIRE_GPU=1 every such skip is a
failure. Run on a GPU machine (desktop or Jetson) with `make gpu-check`, or:  EMOEDGE_REQUIRE_GPU=1 python -m pytest
-q -m gpu
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gpu_policy import NOT_APPLICABLE  # type: ignore[import-not-found]
from model_helpers import assert_outputs_close  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.backends.onnxruntime import OnnxRuntimeBackend
from emoedge.bench.models import random_checkpoint
from emoedge.config import load_recipe
from emoedge.errors import EmoedgeError
from emoedge.evaluation.evaluate import evaluate_model
from emoedge.export.onnx import example_inputs, export_onnx
from emoedge.export.targets import Persons, Target
from emoedge.resources import find

pytestmark = pytest.mark.gpu

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "gpu"  # tests/data/gpu: made by make_graphs.py there
PERSONS = Persons(1, 4, 8)
# Max |Δ| per output against ONNX Runtime on the CPU running the same graph (FP32 arithmetic for FP32 and, after its
# casts, FP16 graphs; the Q/DQ emulated exactly for INT8). FP32: TensorRT's FP32 uses TF32 convolutions by default
# (10-bit mantissa, ~1e-3 relative per layer), so 2e-2 on sigmoid scores. FP16: activations rounded to FP16 (~5e-4
# relative) through the network, ~1e-2 on scores, bounded at 3e-2. INT8: TensorRT runs real INT8 kernels whose
# rounding of accumulations and re-quantisation differs from ONNX Runtime's emulation by a quantisation step
# (1/127 of a tensor's range) here and there, compounding over layers: looser, 0.15. VAD is a regression output of a
# few units, so its bounds are larger in proportion.
TOLERANCE = {
    "fp32": {"scores": 2e-2, "modality_weights": 2e-2, "vad": 1e-1},
    "fp16": {"scores": 3e-2, "modality_weights": 3e-2, "vad": 2e-1},
    "int8": {"scores": 1.5e-1, "modality_weights": 1.5e-1, "vad": 1.0},
}
MAP_DROP = {"fp32": 0.5, "fp16": 0.5, "int8": 3.0}  # points of sample test mAP against the source graph on the CPU
CALIBRATION_IMAGES = 16
ONE_FRAME = ((1, 1), (3, 1), (PERSONS.max, 1))  # (N persons, F frames) per compared call
PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
ORT_PROFILE_MAX = 32  # the most persons ONNX Runtime's TensorRT profile takes (emoedge.backends.onnxruntime)


@pytest.fixture(autouse=True)
def fresh_engine_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """ONNX Runtime's TensorRT engines of this test in its own folder (the default cache lives under XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(scope="module")
def trt(cuda):
    return pytest.importorskip("tensorrt", reason="needs TensorRT's Python bindings (module tensorrt)")


def need_provider(device: str) -> str:
    """The ONNX Runtime provider of `device`, or skip: this onnxruntime build lacks it."""
    import onnxruntime as ort

    provider = PROVIDERS[device]
    if provider not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime build has no {provider} (onnxruntime-gpu is needed)")
    return provider


@pytest.fixture(scope="module")
def model(cuda, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random-weight checkpoint of the sample recipe and its FP32 ONNX: what every target can make."""
    out = tmp_path_factory.mktemp("gpu")
    checkpoint = random_checkpoint(out / "model.pt", "sample", seed=0)
    return {"checkpoint": checkpoint, "fp32": export_onnx(checkpoint, out / "model.onnx").path}


@pytest.fixture(scope="module")
def lowered(model, sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """FP16 and INT8 (TensorRT Q/DQ) ONNX: Model Optimizer's from `model` where it imports and works, else the
    graphs shipped in tests/data/gpu (made on x86 from another tiny model; every comparison runs against the graph
    itself on the CPU, so either kind serves)."""
    from emoedge.export.precision import to_fp16, to_int8

    out = tmp_path_factory.mktemp("lowered")
    calib = out / "calib"
    calib.mkdir()
    for image in sorted((sample_root / "emotic").rglob("*.jpg"))[:CALIBRATION_IMAGES]:
        shutil.copy(image, calib / image.name)
    try:
        return {
            "fp16": to_fp16(model["fp32"], out / "model-fp16.onnx").path,
            "int8": to_int8(model["fp32"], out / "model-int8.onnx", calib=calib, max_images=CALIBRATION_IMAGES).path,
        }
    except EmoedgeError as exc:  # not installed, or installed without a dependency (lief): one line says which
        warnings.warn(f"Model Optimizer cannot convert here ({exc}); the graphs of {SHIPPED} are used", stacklevel=1)
        return {precision: SHIPPED / f"tiny-{precision}.onnx" for precision in ("fp16", "int8")}


def _compare(backend, reference, tolerance: dict[str, float], shapes=ONE_FRAME) -> None:
    assert_outputs_close(backend, reference, tolerance, shapes)


def _map_close(model_file: Path, reference_file: Path, root: Path, drop: float, **kwargs) -> None:
    got = evaluate_model(model_file, root, progress=False, **kwargs).m_ap
    want = evaluate_model(reference_file, root, device="cpu", progress=False).m_ap
    assert 100 * (want - got) <= drop, (got, want)


def test_amp_training_step_on_cuda_learns_the_sample(cuda, sample_root, tmp_path):
    from emoedge.training.trainer import train

    recipe = load_recipe(find("recipe", "sample"), ["run.device=cuda", "run.amp=true", "model.vad=true"])
    result = train(recipe, tmp_path / "run", data_root=sample_root, progress=False)
    assert np.isfinite(result.best_map) and result.best_map > 0.3, result


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
def test_onnxruntime_gpu_providers_twice_in_a_row(model, sample_root, tmp_path, device):
    """The second load of the same file reads the TensorRT engine the first one cached, and agrees just as well."""
    provider = need_provider(device)
    reference = load_model(model["fp32"], device="cpu")
    for _ in range(2):
        backend = load_model(model["fp32"], device=device, precision="fp32")
        assert backend.device.startswith("cuda") and provider in backend.reason
        _compare(backend, reference, TOLERANCE["fp32"])
        del backend
    if device == "tensorrt":
        assert any(p.is_file() for p in (tmp_path / "xdg-cache").rglob("*")), "no engine was cached"
    _map_close(model["fp32"], model["fp32"], sample_root, MAP_DROP["fp32"], device=device, precision="fp32")


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_onnxruntime_tensorrt_runs_lowered_graphs_above_its_profile(lowered, precision):
    """N = 40 persons, more than the provider's profile takes in one call, with one and with three frames."""
    need_provider("tensorrt")
    backend = load_model(lowered[precision], device="tensorrt")
    assert backend.device.startswith("cuda") and backend.precision == precision
    reference = load_model(lowered[precision], device="cpu")
    persons = ORT_PROFILE_MAX + 8
    _compare(backend, reference, TOLERANCE[precision], shapes=((persons, 1), (persons, 3)))


def test_a_retrained_model_in_the_same_engine_cache_gets_its_own_scores(cuda, tmp_path):
    """The same recipe retrained (other weights) at the same path, with the same cache folder: a stale engine
    would give the first model's scores."""
    need_provider("tensorrt")
    cache, path = tmp_path / "cache", tmp_path / "model.onnx"
    references = []
    for seed in (0, 1):
        checkpoint = random_checkpoint(tmp_path / f"model-{seed}.pt", "sample", seed=seed)
        shutil.copyfile(export_onnx(checkpoint, tmp_path / f"model-{seed}.onnx").path, path)
        reference = load_model(path, device="cpu")
        _compare(OnnxRuntimeBackend(path, device="tensorrt", precision="fp32", cache_dir=cache), reference,
                 TOLERANCE["fp32"])  # fmt: skip
        image, body = (t.numpy() for t in example_inputs(reference.card, PERSONS.max, seed=PERSONS.max))
        references.append(reference.infer(image, body)["scores"])
    # The two models differ far beyond the tolerance, so the stale engine's scores could not pass for the new ones.
    assert np.abs(references[0] - references[1]).max() > 10 * TOLERANCE["fp32"]["scores"]


def _engine(onnx_path: Path, precision: str, tmp_path: Path, *, streams: int = 1) -> Path:
    from emoedge.export.tensorrt import build_engine

    target = Target(persons=PERSONS, precision=precision, workspace_mib=1024, streams=streams, name=f"test-{precision}")
    result = build_engine(onnx_path, target, tmp_path / f"{precision}.engine")
    assert set(result.parity) == {PERSONS.min, PERSONS.max}
    assert max(result.parity.values()) <= TOLERANCE[precision]["scores"], result.parity_line
    return result.path


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engines_agree_with_onnxruntime(trt, model, lowered, sample_root, tmp_path, precision):
    from emoedge.formats.tensorrt import strongly_typed_build

    source = model["fp32"] if precision == "fp32" else lowered[precision]
    engine = _engine(source, precision, tmp_path)
    backend = load_model(engine)
    assert backend.precision == precision
    assert backend.info.strongly_typed == strongly_typed_build(trt.__version__)
    _compare(backend, load_model(source, device="cpu"), TOLERANCE[precision])
    _map_close(engine, source, sample_root, MAP_DROP[precision])


def test_multi_frame_engine_agrees_with_onnxruntime(trt, model, tmp_path):
    """An engine whose profile takes F = 1..3 frames, run with persons dealt over three frames (and two, and more
    persons than its profile: sliced), against ONNX Runtime on the CPU."""
    engine = _engine(model["fp32"], "fp32", tmp_path, streams=3)
    backend = load_model(engine)
    assert backend.max_frames == 3 and backend.info.frames == (1, 3, 3)
    shapes = ((3, 3), (7, 3), (PERSONS.max, 3), (5, 2), (PERSONS.max + 3, 3))
    _compare(backend, load_model(model["fp32"], device="cpu"), TOLERANCE["fp32"], shapes=shapes)


def test_fp16_flag_engine_from_the_fp32_onnx_on_weakly_typed_tensorrt(trt, model, sample_root, tmp_path):
    from emoedge.formats.tensorrt import strongly_typed_build

    if strongly_typed_build(trt.__version__):
        pytest.skip(f"{NOT_APPLICABLE}TensorRT {trt.__version__} builds strongly typed only (the FP16 flag is 10.3's)")
    engine = _engine(model["fp32"], "fp16", tmp_path)
    backend = load_model(engine)
    assert backend.info.allowed_precisions == ("fp16", "fp32")
    _compare(backend, load_model(model["fp32"], device="cpu"), TOLERANCE["fp16"])
    _map_close(engine, model["fp32"], sample_root, MAP_DROP["fp16"])
