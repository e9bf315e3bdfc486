"""The OpenVINO backend: emoedge ONNX files and IR folders agree with ONNX Runtime (FP32 within 1e-4; BF16 and INT8
within the bounds of the other BF16 and INT8 paths), the card travels in the IR, `auto` picks it on a CPU-only
machine, and every failure is one line. Intel GPU and NPU paths (static shapes, compiled per bucket) are written
against OpenVINO's API; only their padding is exercised here, on the CPU: this machine has neither."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("nncf", reason="NNCF (the export extra) makes the INT8 IR these tests use; not in this set")

from emoedge.backends import load_model
from emoedge.backends.base import bucket
from emoedge.backends.onnxruntime import OnnxRuntimeBackend
from emoedge.backends.openvino import OpenVinoBackend
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import example_inputs, export_onnx, spread
from emoedge.export.openvino import export_openvino
from emoedge.formats.onnx import read_onnx_card
from emoedge.formats.openvino import core, read_ir_card

FP32_TOLERANCE = 1e-4
# As tests/backends/test_backends.py bounds PyTorch BF16 against FP32.
BF16_TOLERANCE = {"scores": 2e-2, "modality_weights": 1e-2, "vad": 5e-2}
# As tests/export/test_export_precision.py bounds the INT8 files' scores against FP32 (5e-2).
INT8_MAX_DIFF = 5e-2
SHAPES = [(1, 1), (1, 4), (3, 5)]  # (frames F, persons N)


def _bf16_cpu() -> bool:
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, sample_root: Path) -> dict[str, Path]:
    """A random-weight three-branch model with VAD: checkpoint, FP32 ONNX, FP32 IR, FP16-weight IR and INT8 IR."""
    root = tmp_path_factory.mktemp("openvino")
    checkpoint = random_checkpoint(root / "model.pt", seed=1)
    onnx_path = export_onnx(checkpoint, root / "model.onnx").path
    calib = root / "calib"
    calib.mkdir()
    for image in sorted((sample_root / "emotic").rglob("*.jpg"))[:8]:
        shutil.copy(image, calib / image.name)
    return {
        "pt": checkpoint,
        "onnx": onnx_path,
        "ir": export_openvino(onnx_path, root / "ir").path,
        "ir-fp16": export_openvino(onnx_path, root / "ir-fp16", half=True).path,
        "ir-int8": export_openvino(onnx_path, root / "ir-int8", int8=True, calib=calib).path,
    }


@pytest.fixture(scope="module")
def reference(files) -> OnnxRuntimeBackend:
    return load_model(files["onnx"], device="cpu")


def _inputs(card, frames: int, persons: int):
    image, body = example_inputs(card, persons, seed=persons, frames=frames)
    return image.numpy(), body.numpy(), spread(persons, frames).numpy()


def _max_diffs(a: dict, b: dict) -> dict[str, float]:
    assert set(a) == set(b) == {"scores", "modality_weights", "vad"}
    return {key: float(np.abs(a[key] - b[key]).max()) for key in a}


@pytest.mark.parametrize("kind", ["onnx", "ir"])
@pytest.mark.parametrize(("frames", "persons"), SHAPES)
def test_fp32_agrees_with_onnxruntime(files, reference, kind, frames, persons):
    backend = load_model(files[kind], device="openvino:CPU", precision="fp32")
    assert isinstance(backend, OpenVinoBackend) and backend.precision == "fp32" and backend.max_frames is None
    inputs = _inputs(backend.card, frames, persons)
    got, want = backend.infer(*inputs), reference.infer(*inputs)
    assert all(v.dtype == np.float32 and len(v) == persons for v in got.values())
    assert max(_max_diffs(got, want).values()) <= FP32_TOLERANCE, _max_diffs(got, want)


@pytest.mark.skipif(not _bf16_cpu(), reason="this CPU has no BF16 instructions")
def test_bf16_is_auto_here_and_close_to_fp32(files, reference):
    backend = load_model(files["onnx"], device="openvino")
    assert backend.precision == "bf16" and "BF16 instructions" in backend.reason
    inputs = _inputs(backend.card, 3, 5)
    want = reference.infer(*inputs)
    assert np.ptp(want["scores"]) > 0.5  # scores spread over 0..1, not all near 0.5
    for key, value in _max_diffs(backend.infer(*inputs), want).items():
        assert value <= BF16_TOLERANCE[key], (key, value)


@pytest.mark.parametrize("kind", ["ir-fp16", "ir-int8"])
def test_fp16_weights_and_int8_are_close_to_fp32(files, reference, kind):
    backend = load_model(files[kind], device="openvino", precision="fp32")  # int8: the rest of the graph in FP32
    assert backend.precision == ("int8" if kind == "ir-int8" else "fp32")
    inputs = _inputs(backend.card, 3, 5)
    diff = _max_diffs(backend.infer(*inputs), reference.infer(*inputs))
    assert diff["scores"] <= (INT8_MAX_DIFF if kind == "ir-int8" else 2e-3), diff


def test_cpu_int8_onnx_runs_in_openvino_like_in_onnxruntime(files, reference, tmp_path):
    """emoedge's INT8 ONNX for CPUs (ONNX Runtime's Q/DQ placement) runs in OpenVINO as INT8, close to FP32."""
    pytest.importorskip("onnxruntime.quantization")
    from emoedge.export.precision import to_int8

    calib = files["ir-int8"].parent / "calib"
    int8 = to_int8(files["onnx"], tmp_path / "int8-cpu.onnx", target="cpu", calib=calib).path
    backend = load_model(int8, device="openvino")
    assert backend.precision == "int8" and "quantized file" in backend.reason
    inputs = _inputs(backend.card, 1, 4)
    diff = _max_diffs(backend.infer(*inputs), reference.infer(*inputs))
    assert diff["scores"] <= INT8_MAX_DIFF, diff


def test_the_card_travels_in_the_ir(files):
    card = read_onnx_card(files["onnx"])
    for kind in ("ir", "ir-fp16", "ir-int8"):
        assert read_ir_card(files[kind]) == card
        assert load_model(files[kind]).card == card
    assert load_model(files["ir"] / "model.xml").card == card  # the graph file names the IR as well as its folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible: auto means ONNX Runtime's GPU providers")
def test_auto_runs_onnx_files_in_openvino_on_a_cpu_and_cpu_keeps_onnxruntime(files):
    auto = load_model(files["onnx"])
    assert isinstance(auto, OpenVinoBackend) and auto.device == "openvino:CPU" and auto.input_device == "cpu"
    assert "auto on a CPU-only machine" in auto.reason
    assert isinstance(load_model(files["onnx"], device="cpu"), OnnxRuntimeBackend)


def test_gpu_and_npu_padding_to_shape_buckets(files, reference):
    """The static-shape path of Intel GPUs and NPUs (F and N padded to powers of two, one compiled model per
    bucket), run here on the CPU: the outputs are those of the dynamic graph."""
    assert [bucket(n) for n in (1, 2, 3, 4, 5, 9, 16, 17)] == [1, 2, 4, 4, 8, 16, 16, 32]
    backend = load_model(files["onnx"], device="openvino:CPU", precision="fp32")
    backend.bucketed = True
    for frames, persons in [(1, 3), (3, 5), (3, 6)]:
        inputs = _inputs(backend.card, frames, persons)
        diff = _max_diffs(backend.infer(*inputs), reference.infer(*inputs))
        assert max(diff.values()) <= FP32_TOLERANCE, (frames, persons, diff)
    assert set(backend._compiled) == {None, (1, 4), (4, 8)}  # (3,5) and (3,6) share one; None: the dynamic graph


def test_no_persons_gives_empty_outputs(files):
    backend = load_model(files["ir"])
    image, body, _ = _inputs(backend.card, 1, 1)
    out = backend.infer(image, body[:0])
    assert {k: v.shape for k, v in out.items()} == {"scores": (0, 26), "modality_weights": (0, 3), "vad": (0, 3)}


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda f, t: t / "empty", {}, "OpenVINO IR folder .*empty: no .xml file in it"),
        (lambda f, t: _without_bin(f["ir"], t), {}, r"its weights model.bin are missing beside it"),
        (lambda f, t: f["onnx"], {"device": "openvino:NPU"}, r"device 'openvino:NPU': OpenVINO finds no NPU here "
         r"\(available: .*CPU"),
        (lambda f, t: f["onnx"], {"device": "openvino:GPU.1"}, r"OpenVINO finds no GPU.1 here"),
        (lambda f, t: f["onnx"], {"device": "openvino:TPU"}, r"device 'openvino:TPU': expected auto, cpu"),
        (lambda f, t: f["onnx"], {"device": "openvino", "precision": "int8"}, r"is a fp32 model and OpenVINO runs "
         "INT8 only where the file is quantized"),
        (lambda f, t: f["onnx"], {"device": "openvino", "backend": "onnxruntime"}, r"device 'openvino': the "
         "onnxruntime backend runs on auto, cpu, cuda\\[:K\\] or tensorrt\\[:K\\]"),
        (lambda f, t: f["pt"], {"device": "openvino"}, r"device 'openvino': the torch backend runs on"),
        (lambda f, t: f["ir"], {"backend": "onnxruntime"}, r"backend 'onnxruntime' reads .onnx files, not a folder"),
        (lambda f, t: _foreign(f["onnx"], t), {}, r"not produced by emoedge \(no emoedge/card in its rt_info\)"),
    ],
)  # fmt: skip
def test_failures_are_one_line(files, tmp_path, make, kwargs, message):
    (tmp_path / "empty").mkdir()
    if "NPU" in kwargs.get("device", "") and "NPU" in core().available_devices:
        pytest.skip("this machine has an NPU")
    with pytest.raises(EmoedgeError, match=message) as info:
        load_model(make(files, tmp_path), **kwargs)
    assert "\n" not in str(info.value)


def _without_bin(ir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "no-bin"
    folder.mkdir()
    shutil.copy(ir / "model.xml", folder / "model.xml")
    return folder


def _foreign(onnx_path: Path, tmp_path: Path) -> Path:
    import openvino as ov

    folder = tmp_path / "foreign"
    ov.save_model(ov.convert_model(str(onnx_path)), str(folder / "model.xml"))  # no card written
    return folder


def test_importing_the_backends_does_not_import_openvino():
    import subprocess
    import sys

    code = "import sys, emoedge.backends, emoedge.formats.openvino; print('openvino' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_bench_measures_an_ir_folder_against_the_gemm_rate_at_its_precision(files, tmp_path):
    from emoedge.bench.plan import BenchPlan
    from emoedge.bench.run import bench

    result = bench(files["ir-int8"], tmp_path / "bench", BenchPlan(persons=(1, 2), seconds=0.05, frames=2),
                   progress=False)  # fmt: skip
    assert "OpenVINO" in result["backend"] and (tmp_path / "bench" / "bench.md").is_file()
    shared = [r for r in result["engine"] if r["way"] == "shared"]
    assert [r["persons"] for r in shared] == [1, 2]
    for row in shared:  # INT8: GOP/s against torch's int8 product where this torch has one
        assert row["gflop_per_s"] > 0 and (row["gemm_gflop_per_s"] is None or row["of_peak"] > 0)


# Made and released first-in-first-out, two OpenVINO Cores left the thread's signal stack pointing at the unmapped
# stack of the first one's CPU plugin: the next signal handled (Python's handlers run on that stack) was a SIGSEGV.
# This ran after training and torch.onnx exports (their DataLoader workers' SIGCHLD) and crashed them.
RELEASED_IN_TURN = """
import gc, os, signal, sys
from emoedge.backends import load_model
first, second = (load_model(path, device="openvino") for path in sys.argv[1:3])
del first
gc.collect()
del second
gc.collect()
signal.signal(signal.SIGUSR1, lambda *_: print("handled", flush=True))
os.kill(os.getpid(), signal.SIGUSR1)
"""


def test_backends_released_in_any_order_leave_signal_handling_working(files):
    """In a child process, since a failure kills its process: two backends released first-in-first-out, then a
    Python signal handler runs."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", RELEASED_IN_TURN, str(files["onnx"]), str(files["ir"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "handled", (proc.returncode, proc.stderr[-2000:])


def test_every_backend_and_reader_uses_the_one_core(files):
    backends = [load_model(files[kind], device="openvino") for kind in ("onnx", "ir", "ir-int8")]
    assert all(backend.core is core() for backend in backends)
