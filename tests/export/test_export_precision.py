"""FP16 and INT8 ONNX (Model Optimizer; ONNX Runtime for CPU INT8): accuracy against FP32, card kept, one-line errors.

Bounds, measured on the sample recipe's trained model (ONNX Runtime CPU; mAP on the val split, the export gate's):
FP16 max |Δscore| 2e-4 and mAP change 0.00 pt (required: ≤ 2e-2 and ≤ 0.5 pt); INT8 (entropy calibration on the
val split) max |Δscore| 2e-2 and mAP change +0.07 pt, bounded here at 5e-2 and 1.0 pt; CPU INT8 (ONNX Runtime
quantize_static, min/max calibration on the val split) max |Δscore| 1.6e-2 and mAP change -0.08 pt, bounded here at
5e-2 and 0.5 pt.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from cli_helpers import REPO, assert_one_line_error, run_cli  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.backends.onnxruntime import CPU, CUDA, TENSORRT, _choose_provider
from emoedge.errors import EmoedgeError
from emoedge.evaluation.evaluate import evaluate_model
from emoedge.export.gate import check_max_drop
from emoedge.export.onnx import export_onnx
from emoedge.export.precision import to_fp16, to_int8
from emoedge.formats.onnx import (
    FORMAT_KEY,
    INT8_TARGET_KEY,
    PRECISION_KEY,
    read_onnx_card,
)

needs_modelopt = pytest.mark.skipif(
    importlib.util.find_spec("modelopt") is None, reason="nvidia-modelopt[onnx] is not installed"
)

FP16_MAX_DIFF, FP16_MAX_MAP_CHANGE = 2e-2, 0.005
INT8_MAX_DIFF, INT8_MAX_MAP_CHANGE = 5e-2, 0.010
CPU_INT8_MAX_DIFF, CPU_INT8_MAX_MAP_CHANGE = 5e-2, 0.005


@pytest.fixture(scope="module")
def trained(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, FP32 ONNX) of the sample recipe trained on the sample dataset."""
    from emoedge.config import load_recipe
    from emoedge.training.trainer import train

    out = tmp_path_factory.mktemp("precision")
    result = train(load_recipe(REPO / "train" / "sample.yaml"), out / "run", data_root=sample_root, progress=False)
    return result.best, export_onnx(result.best, out / "model.onnx").path


@pytest.fixture(scope="module")
def fp16(trained, sample_root):
    return to_fp16(trained[1], trained[1].with_name("model-fp16.onnx"), data=sample_root)


@pytest.fixture(scope="module")
def int8(trained, sample_root):
    return to_int8(trained[1], trained[1].with_name("model-int8.onnx"), data=sample_root, split="val")


@pytest.fixture(scope="module")
def int8_cpu(trained, sample_root):
    return to_int8(trained[1], trained[1].with_name("model-int8-cpu.onnx"), target="cpu", data=sample_root)


@pytest.fixture
def calib(sample_root, tmp_path) -> Path:
    """A folder of six plain images of the sample dataset."""
    folder = tmp_path / "calib"
    folder.mkdir()
    for image in sorted((sample_root / "emotic").rglob("*.jpg"))[:6]:
        shutil.copy(image, folder / image.name)
    return folder


@needs_modelopt
def test_fp16_is_close_to_fp32_in_scores_and_map(fp16):
    assert fp16.precision == "fp16" and fp16.path.is_file()
    assert fp16.max_abs_diff <= FP16_MAX_DIFF, fp16.parity_line
    assert fp16.gate.source > 0.5  # a trained model: mAP changes mean something
    assert abs(fp16.gate.new - fp16.gate.source) <= FP16_MAX_MAP_CHANGE, fp16.map_line
    assert "val-split frames" in fp16.parity_line and fp16.map_line.startswith("val mAP: model.onnx ")


@needs_modelopt
def test_fp16_graph_keeps_fp32_inputs_and_outputs(fp16):
    model = onnx.load(str(fp16.path))
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert types.pop("frame") == onnx.TensorProto.INT64  # each person's frame index stays an integer
    assert set(types.values()) == {onnx.TensorProto.FLOAT}


@needs_modelopt
def test_int8_runs_in_onnxruntime_and_its_map_change_is_bounded(int8):
    assert int8.precision == "int8"
    assert int8.max_abs_diff <= INT8_MAX_DIFF, int8.parity_line
    assert abs(int8.gate.new - int8.gate.source) <= INT8_MAX_MAP_CHANGE, int8.map_line
    model = onnx.load(str(int8.path))
    assert sum(node.op_type == "QuantizeLinear" for node in model.graph.node) >= 12  # every Conv input at least
    backend = load_model(int8.path, device="cpu")
    assert backend.precision == "int8"
    card = backend.card
    out = backend.infer(np.zeros((1, 3, *card.image_size), np.float32), np.zeros((5, 3, *card.body_size), np.float32))
    assert out["scores"].shape == (5, 26) and np.isfinite(out["scores"]).all()


def test_cpu_int8_runs_in_onnxruntime_and_its_map_change_is_bounded(int8_cpu):
    assert int8_cpu.precision == "int8"
    assert int8_cpu.max_abs_diff <= CPU_INT8_MAX_DIFF, int8_cpu.parity_line
    assert abs(int8_cpu.gate.new - int8_cpu.gate.source) <= CPU_INT8_MAX_MAP_CHANGE, int8_cpu.map_line
    model = onnx.load(str(int8_cpu.path))
    dequantized = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert convs and all(set(node.input[:2]) <= dequantized for node in convs)  # what ORT's CPU kernels fuse
    backend = load_model(int8_cpu.path, device="cpu")
    assert backend.precision == "int8"
    card = backend.card
    out = backend.infer(np.zeros((1, 3, *card.image_size), np.float32), np.zeros((5, 3, *card.body_size), np.float32))
    assert out["scores"].shape == (5, 26) and np.isfinite(out["scores"]).all()


@needs_modelopt
@pytest.mark.parametrize(
    ("which", "precision", "target"),
    [("fp16", "fp16", None), ("int8", "int8", "tensorrt"), ("int8_cpu", "int8", "cpu")],
)
def test_card_and_format_survive_with_the_precision_noted(trained, request, which, precision, target):
    result = request.getfixturevalue(which)
    assert read_onnx_card(result.path) == read_onnx_card(trained[1])
    model = onnx.load(str(result.path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[PRECISION_KEY] == precision and meta.get(INT8_TARGET_KEY) == target
    assert meta[FORMAT_KEY] == "emoedge-onnx-1" and model.producer_name == "emoedge"


def ort_quantization_state() -> dict:
    """Every attribute of onnxruntime.quantization's modules and classes, and its registries' contents."""
    import onnxruntime.quantization  # noqa: F401

    state = {}
    for name, module in [(n, m) for n, m in sys.modules.items() if n.startswith("onnxruntime.quantization")]:
        for key, value in vars(module).items():
            state[name, key] = dict(value) if isinstance(value, dict) and not key.startswith("__") else value
            if isinstance(value, type):
                state.update({(name, key, attr): v for attr, v in vars(value).items()})
    return state


@needs_modelopt
def test_both_int8_targets_in_one_process_in_either_order(trained, calib, tmp_path):
    """Model Optimizer patches onnxruntime.quantization process-wide; its conversions run in a child process, so this
    process never imports it and its onnxruntime.quantization stays as it was."""
    assert "modelopt.onnx.quantization" not in sys.modules
    before = ort_quantization_state()
    cpu_first = to_int8(trained[1], tmp_path / "cpu-1.onnx", target="cpu", calib=calib, max_images=3)
    trt = to_int8(trained[1], tmp_path / "trt.onnx", calib=calib, max_images=3)
    after = ort_quantization_state()
    assert "modelopt.onnx.quantization" not in sys.modules and "modelopt.onnx.autocast" not in sys.modules
    assert after.keys() == before.keys()
    assert [key for key in before if before[key] is not after[key] and before[key] != after[key]] == []
    values = [*after.values(), *(v for d in after.values() if isinstance(d, dict) for v in d.values())]
    assert not [v for v in values if str(getattr(v, "__module__", "")).startswith("modelopt")]  # not patched before
    cpu_after = to_int8(trained[1], tmp_path / "cpu-2.onnx", target="cpu", calib=calib, max_images=3)
    trt_after = to_int8(trained[1], tmp_path / "trt-2.onnx", target="tensorrt", calib=calib, max_images=3)
    assert cpu_first.path.read_bytes() == cpu_after.path.read_bytes()
    assert trt.path.read_bytes() == trt_after.path.read_bytes()


def test_cpu_int8_needs_no_model_optimizer(trained, calib, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "modelopt.onnx.quantization", None)
    result = to_int8(trained[1], tmp_path / "int8.onnx", target="cpu", calib=calib, max_images=2)
    assert load_model(result.path, device="cpu").precision == "int8"


@needs_modelopt
def test_int8_from_a_folder_of_plain_images(trained, calib, tmp_path):
    result = to_int8(trained[1], tmp_path / "out" / "int8.onnx", calib=calib, max_images=4)
    assert result.gate is None and result.map_line is None
    assert "4 calibration frames, N = 4" in result.parity_line
    assert result.max_abs_diff < 0.25  # measured 8.5e-2: four whole images and their crops calibrate coarsely
    assert read_onnx_card(result.path).name == "sample"


@needs_modelopt
def test_the_gate_measures_with_the_one_evaluator(trained, sample_root, fp16):
    # device "cpu", as the gate measures ONNX files (ONNX Runtime's CPU provider; "auto" may be OpenVINO's BF16 here)
    torch_map, onnx_map = (
        evaluate_model(m, sample_root, split="val", device="cpu", progress=False).m_ap for m in trained
    )
    assert torch_map == pytest.approx(onnx_map, abs=1e-4) and onnx_map == pytest.approx(fp16.gate.source, abs=1e-9)


def test_an_export_past_the_allowed_drop_is_refused_and_writes_nothing(trained, sample_root, tmp_path):
    """INT8 calibrated on one black frame loses accuracy; with --max-map-drop below that loss: exit 2, no file."""
    black = tmp_path / "black"
    black.mkdir()
    cv2.imwrite(str(black / "black.png"), np.zeros((48, 64, 3), np.uint8))
    out = tmp_path / "out" / "int8.onnx"
    args = ("--int8", "--int8-target", "cpu", "--calib", str(black), "--data", str(sample_root), "-o", str(out))
    proc = run_cli("export", "precision", str(trained[1]), *args, "--max-map-drop", "0.5")
    assert_one_line_error(proc, "int8.onnx refused, nothing written: val mAP: model.onnx", "allowed drop 0.50 pt")
    assert not out.parent.exists()  # the folder the refused export made is gone too
    accepted = run_cli("export", "precision", str(trained[1]), *args, "--max-map-drop", "100")
    assert accepted.returncode == 0 and out.is_file(), accepted.stderr[-2000:]
    assert "val mAP: model.onnx" in accepted.stdout and "allowed drop 100.00 pt" in accepted.stdout


def foreign(path: Path) -> Path:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph, producer_name="someone-else"), str(path))
    return path


def already_fp16(source: Path, path: Path) -> Path:
    """An emoedge graph holding an FP16 weight, as `to_fp16` leaves it."""
    model = onnx.load(str(source))
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(2, np.float16), "half"))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("foreign", "not produced by emoedge"),
        ("garbage", "not a readable ONNX file"),
        ("missing", "file not found"),
        ("converted", "already fp16"),
        ("empty-calib", "no images"),
        ("no-calib-folder", "not a folder"),
        ("no-calibration", "needs real inputs"),
        ("no-modelopt", "NVIDIA Model Optimizer is not installed"),
        ("bad-target", "INT8 target 'gpu': expected one of \\['tensorrt', 'cpu'\\]"),
        ("cpu-fp16", "INT8 target 'cpu' keeps the rest FP32"),
        ("no-images", "max_images 0: expected an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(exported, tmp_path, monkeypatch, case, message):
    source, calib = exported["full"][1].path, tmp_path / "calib"
    calib.mkdir()
    if case == "foreign":
        source = foreign(tmp_path / "other.onnx")
    elif case == "garbage":
        source = tmp_path / "garbage.onnx"
        source.write_bytes(b"\x00garbage" * 40)
    elif case == "missing":
        source = tmp_path / "nowhere.onnx"
    elif case == "converted":
        source = already_fp16(source, tmp_path / "half.onnx")
    elif case == "no-calib-folder":
        calib = tmp_path / "absent"
    elif case == "no-modelopt":
        cv2.imwrite(str(calib / "frame.png"), np.full((40, 60, 3), 128, np.uint8))
        monkeypatch.setitem(sys.modules, "modelopt.onnx.quantization", None)
        monkeypatch.setitem(sys.modules, "modelopt.onnx.autocast", None)
    options = {
        "bad-target": {"target": "gpu"},
        "cpu-fp16": {"target": "cpu", "high_precision": "fp16"},
        "no-images": {"max_images": 0},
    }.get(case, {})
    out = tmp_path / "out.onnx"
    with pytest.raises(EmoedgeError, match=message) as info:
        to_int8(source, out, calib=None if case == "no-calibration" else calib, **options)
    assert "\n" not in str(info.value) and not out.exists()
    if case in ("foreign", "garbage", "missing", "converted"):
        assert str(source) in str(info.value)
    if case in ("foreign", "converted", "no-modelopt"):
        with pytest.raises(EmoedgeError, match=message):
            to_fp16(source, out)
        assert not out.exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, 1.0),  # int8's default
        (0, 0.0),
        (0.5, 0.5),
        (-1, "max_map_drop -1.0: expected a number >= 0"),
        (float("nan"), "max_map_drop: expected a finite number, got nan"),
        (True, "max_map_drop: expected float, got True"),
    ],
)
def test_the_allowed_drop_is_checked_where_it_enters(given, expected):
    if isinstance(expected, float):
        assert check_max_drop(given, "int8") == expected
    else:
        with pytest.raises(EmoedgeError, match=f"^{re.escape(expected)}$"):
            check_max_drop(given, "int8")


# The ONNX Runtime backend with onnxruntime-gpu (the build Model Optimizer needs) on a machine without a GPU.
@pytest.mark.parametrize(
    ("available", "gpu", "expected"),
    [
        ([TENSORRT, CUDA, CPU], False, (CPU, "no CUDA GPU visible")),
        ([TENSORRT, CUDA, CPU], True, (TENSORRT, "the fastest provider in this onnxruntime build")),
        ([CUDA, CPU], True, (CUDA, "the fastest provider in this onnxruntime build")),
        ([CPU], True, (CPU, "no CUDA or TensorRT provider in this onnxruntime build")),
    ],
)
def test_auto_device_needs_a_visible_gpu_for_gpu_providers(available, gpu, expected):
    provider, _, why = _choose_provider("auto", available, gpu=gpu)
    assert (provider, why) == expected


def test_auto_device_without_gpu_runs_on_the_cpu_and_says_so(exported):
    """ONNX Runtime's own `auto` (where OpenVINO is installed, load_model's `auto` runs ONNX files in OpenVINO:
    tests/backends/test_backend_openvino.py)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    backend = load_model(exported["full"][1].path, backend="onnxruntime")
    assert backend.device == "cpu" and backend.precision == "fp32" and "CPUExecutionProvider" in backend.reason
