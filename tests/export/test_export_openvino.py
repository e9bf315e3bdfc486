"""`emoedge export openvino`: IR folders (FP32, FP16 weights, NNCF INT8) of the sample recipe's trained model pass
the export gate against their ONNX source, every OpenVINO file evaluates within the gate of its source, the card and
precision are in the IR's rt_info, and bad requests are one line before any work.

Measured here (sample model, val split, OpenVINO on a 2-core AVX512-BF16 CPU, BF16 at `auto`): FP32 IR -0.01 pt
(max |Δscore| 0 against the ONNX in OpenVINO FP32), FP16-weight IR -0.02 pt (1.7e-4), NNCF INT8 IR calibrated on the
val split +0.83 pt (1.5e-2); the gates allow drops of 0.2, 0.2 and 1.0 pt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("openvino")

from cli_helpers import REPO  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.errors import EmoedgeError
from emoedge.evaluation.evaluate import evaluate_model
from emoedge.export.gate import DEFAULT_MAX_DROP, GATE_SPLIT
from emoedge.export.onnx import export_onnx
from emoedge.export.openvino import export_openvino
from emoedge.formats.openvino import core, ir_graph, ir_precision, read_ir, read_ir_card

needs_nncf = pytest.mark.skipif(__import__("importlib").util.find_spec("nncf") is None, reason="needs nncf")
MAX_DIFF = {"fp32": 1e-4, "fp16": 2e-2, "int8": 5e-2}  # scores against the ONNX, as the ONNX precision tests bound


@pytest.fixture(scope="module")
def trained(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FP32 ONNX of the sample recipe trained on the sample dataset."""
    from emoedge.config import load_recipe
    from emoedge.training.trainer import train

    out = tmp_path_factory.mktemp("openvino-export")
    result = train(load_recipe(REPO / "train" / "sample.yaml"), out / "run", data_root=sample_root, progress=False)
    return export_onnx(result.best, out / "model.onnx").path


@pytest.fixture(scope="module")
def irs(trained, sample_root) -> dict:
    """FP32, FP16-weight and INT8 IR folders, each through the val-mAP gate (--data)."""
    made = {
        "fp32": export_openvino(trained, trained.with_name("ir"), data=sample_root),
        "fp16": export_openvino(trained, trained.with_name("ir-fp16"), half=True, data=sample_root),
    }
    if __import__("importlib").util.find_spec("nncf") is not None:
        made["int8"] = export_openvino(trained, trained.with_name("ir-int8"), int8=True, data=sample_root)
    return made


@pytest.mark.parametrize("precision", ["fp32", "fp16", pytest.param("int8", marks=needs_nncf)])
def test_each_ir_passes_the_gate_of_its_source(irs, trained, precision):
    result = irs[precision]
    assert result.precision == precision and result.max_abs_diff <= MAX_DIFF[precision], result.parity_line
    assert result.gate is not None and result.gate.passed and result.gate.source > 0.5, result.map_line
    assert -result.gate.change <= DEFAULT_MAX_DROP[precision], result.map_line
    assert "val-split frames" in result.parity_line and result.map_line.startswith("val mAP: model.onnx ")
    graph = ir_graph(result.path)
    assert graph == result.path / "model.xml" and graph.with_suffix(".bin").is_file()
    assert read_ir_card(result.path).name == "sample"
    assert ir_precision(read_ir(core(), graph)) == precision


def test_the_onnx_files_evaluate_in_openvino_within_the_gate_of_their_source(trained, sample_root, tmp_path):
    """The FP32 ONNX and the INT8 ONNX for CPUs, run by OpenVINO (BF16 where the CPU has it), against the FP32 ONNX
    in ONNX Runtime: each within the export gate of its precision."""
    pytest.importorskip("onnxruntime.quantization")
    from emoedge.export.precision import to_int8

    source = evaluate_model(trained, sample_root, split=GATE_SPLIT, device="cpu", workers=0, progress=False).m_ap
    files = {"fp32": trained, "int8": to_int8(trained, tmp_path / "int8-cpu.onnx", target="cpu", data=sample_root).path}
    for precision, path in files.items():
        backend = load_model(path, device="openvino")
        assert backend.name == "openvino"
        got = evaluate_model(backend, sample_root, split=GATE_SPLIT, workers=0, progress=False).m_ap
        assert 100 * (source - got) <= DEFAULT_MAX_DROP[precision], (precision, got, source)


def test_an_earlier_ir_is_replaced_and_the_default_rt_info_reads_back(irs, trained):
    again = export_openvino(trained, irs["fp32"].path)
    assert again.path == irs["fp32"].path and {p.name for p in again.path.iterdir()} == {"model.xml", "model.bin"}
    assert not [p for p in again.path.parent.iterdir() if p.name.startswith(".ir.")]  # no staging folder left


@pytest.mark.parametrize(
    ("kwargs", "prepare", "message"),
    [
        ({"int8": True}, None, "INT8 calibration needs real inputs"),
        ({}, "file", "is a file; expected a folder name"),
        ({}, "other", "holds other files; choose a new or empty folder"),
        ({"target_device": "TPU"}, None, "target device 'TPU': expected one of"),
        ({"max_images": 0, "int8": True, "calib": Path("/nowhere")}, None, "max_images 0: expected an integer >= 1"),
        ({"max_map_drop": -1}, None, "max_map_drop -1.0: expected"),
    ],
)
def test_bad_requests_are_one_line_before_any_work(trained, tmp_path, kwargs, prepare, message):
    out = tmp_path / "ir"
    if prepare == "file":
        out.write_text("x")
    elif prepare == "other":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    with pytest.raises(EmoedgeError, match=message) as info:
        export_openvino(trained, out, **kwargs)
    assert "\n" not in str(info.value)
    assert prepare is not None or not out.exists()


def test_a_foreign_or_missing_onnx_is_one_line(tmp_path):
    with pytest.raises(EmoedgeError, match="file not found"):
        export_openvino(tmp_path / "absent.onnx", tmp_path / "ir")


def test_triton_repository_of_an_ir_uses_the_openvino_backend(irs, tmp_path):
    pytest.importorskip("tritonclient", reason="the `triton` extra is not installed")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    from emoedge.card import ModelCard
    from emoedge.export.triton import export_triton

    ir = irs["fp16"].path
    with pytest.raises(EmoedgeError, match="Triton's OpenVINO backend runs on the CPU; use instance kind 'cpu'"):
        export_triton(ir, tmp_path / "repo")
    out = export_triton(ir, tmp_path / "repo", name="emo", kind="cpu")
    assert out.model == tmp_path / "repo" / "emo" / "1" / "model.xml" and out.platform == "openvino"
    assert out.model.with_suffix(".bin").read_bytes() == (ir / "model.bin").read_bytes()
    config = text_format.Parse(out.config.read_text(), pb.ModelConfig())
    assert (config.backend, config.platform, config.default_model_filename) == ("openvino", "", "model.xml")
    assert [i.name for i in config.input] == ["image", "body", "frame"]
    assert ModelCard.from_json(config.parameters["emoedge_card"].string_value) == read_ir_card(ir)
