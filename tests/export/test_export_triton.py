"""`emoedge export triton`: a model repository whose config.pbtxt Triton's own schema (tritonclient's protobuf) reads,
with the tensors of the file and the card in its parameters (an engine's also its profile bounds, TensorRT version and
DLA core, and the container to serve it with); bad requests are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli  # type: ignore[import-not-found]
from engine_helpers import BODY_CARD, engine_info  # type: ignore[import-not-found]
from google.protobuf import text_format
from model_helpers import legacy_onnx  # type: ignore[import-not-found]

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.triton import export_triton
from emoedge.formats.engine import write_engine_info
from emoedge.formats.onnx import read_onnx_card
from emoedge.formats.triton import BOUND_PARAMETERS, TENSORRT_PARAMETER

pytest.importorskip("tritonclient", reason="the `triton` extra is not installed")
from tritonclient.grpc import model_config_pb2 as pb

ENGINE_BYTES = bytes(range(100))  # as many as engine_info's sidecar says the engine has


def read_config(path: Path) -> pb.ModelConfig:
    """config.pbtxt parsed with Triton's model-configuration schema: unknown fields or bad values raise."""
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def tensors(repeated) -> dict[str, tuple[str, list[int]]]:
    return {t.name: (pb.DataType.Name(t.data_type), list(t.dims)) for t in repeated}


@pytest.mark.parametrize("name", ["full", "body_place"])
def test_onnx_repository_has_the_graphs_tensors_and_card(exported, name, tmp_path):
    result = exported[name][1]
    out = export_triton(result.path, tmp_path / "repo", name="emo", instances=2)
    assert out.model == tmp_path / "repo" / "emo" / "1" / "model.onnx"
    assert out.model.read_bytes() == result.path.read_bytes()
    config = read_config(out.config)
    card = read_onnx_card(result.path)
    h, w = card.image_size
    bh, bw = card.body_size
    assert (config.name, config.platform, config.max_batch_size) == ("emo", "onnxruntime_onnx", 0)
    assert tensors(config.input) == {
        "image": ("TYPE_FP32", [-1, 3, h, w]), "body": ("TYPE_FP32", [-1, 3, bh, bw]), "frame": ("TYPE_INT64", [-1]),
    }  # fmt: skip
    expected = {"scores": ("TYPE_FP32", [-1, 26]), "modality_weights": ("TYPE_FP32", [-1, 3])}
    if card.vad:
        expected["vad"] = ("TYPE_FP32", [-1, 3])
    assert tensors(config.output) == expected
    assert [(g.count, pb.ModelInstanceGroup.Kind.Name(g.kind)) for g in config.instance_group] == [(2, "KIND_GPU")]
    assert not config.HasField("dynamic_batching")
    assert ModelCard.from_json(config.parameters["emoedge_card"].string_value) == card


def test_a_graph_without_the_frame_input_has_none_in_its_config(exported, tmp_path):
    legacy = legacy_onnx(exported["full"][0], tmp_path / "legacy.onnx")
    config = read_config(export_triton(legacy, tmp_path / "repo", kind="cpu").config)
    assert sorted(tensors(config.input)) == ["body", "image"]
    assert pb.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_CPU"


@pytest.mark.parametrize(
    ("fields", "has_frame"),
    [({"frames": (1, 2, 4), "frame_input": True}, True), ({"frames": (1, 1, 1), "frame_input": True}, True),
     ({"frames": (1, 1, 1), "frame_input": False}, False),
     ({"frames": (1, 2, 4)}, True), ({}, False)],  # sidecars written before `frame_input`: guessed from the profile
)  # fmt: skip
def test_engine_repository_is_a_tensorrt_plan_with_the_sidecars_card(exported, fields, has_frame, tmp_path):
    """Only the sidecar is read (no TensorRT here): the engine's bytes are copied as they are."""
    card = read_onnx_card(exported["full"][1].path)
    engine = tmp_path / "model.engine"
    engine.write_bytes(ENGINE_BYTES)
    write_engine_info(engine, engine_info(card, **fields))
    out = export_triton(engine, tmp_path / "repo")
    config = read_config(out.config)
    assert (config.platform, config.default_model_filename) == ("tensorrt_plan", "model.plan")
    assert out.model == tmp_path / "repo" / "emoedge" / "1" / "model.plan"
    assert out.model.read_bytes() == ENGINE_BYTES
    assert ("frame" in tensors(config.input)) is has_frame
    assert ModelCard.from_json(config.parameters["emoedge_card"].string_value) == card


def export_engine(tmp_path: Path, **fields) -> tuple[pb.ModelConfig, str]:
    """An engine file and its sidecar (`fields` replace engine_info's) exported: its parsed config and the export's
    container line. Only the sidecar is read; no TensorRT here."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(ENGINE_BYTES)
    write_engine_info(engine, engine_info(BODY_CARD, **fields))
    out = export_triton(engine, tmp_path / "repo")
    return read_config(out.config), out.container


def bounds(config: pb.ModelConfig) -> dict[str, str]:
    return {key: config.parameters[key].string_value for key in BOUND_PARAMETERS.values() if key in config.parameters}


def test_a_dla_engines_config_has_its_fixed_profile_its_dla_core_and_tensorrt_version(tmp_path):
    dla = {"persons": (4, 4, 4), "frames": (2, 2, 2), "frame_input": True, "dla_core": 1, "tensorrt": "10.3.0"}
    config, _ = export_engine(tmp_path, **dla)
    assert bounds(config) == {
        "emoedge_min_persons": "4", "emoedge_max_persons": "4", "emoedge_min_frames": "2", "emoedge_max_frames": "2",
    }  # fmt: skip
    assert config.parameters[TENSORRT_PARAMETER].string_value == "10.3.0"
    (group,) = config.instance_group
    assert pb.ModelInstanceGroup.Kind.Name(group.kind) == "KIND_GPU"
    devices = [(pb.ModelInstanceGroup.SecondaryDevice.SecondaryDeviceKind.Name(d.kind), d.device_id)
               for d in group.secondary_devices]  # fmt: skip
    assert devices == [("KIND_NVDLA", 1)]


def test_a_gpu_engines_config_has_its_profile_and_no_secondary_device(tmp_path):
    config, _ = export_engine(tmp_path, persons=(1, 4, 16), frames=(1, 2, 4), frame_input=True)
    assert bounds(config) == {
        "emoedge_min_persons": "1", "emoedge_max_persons": "16", "emoedge_min_frames": "1", "emoedge_max_frames": "4",
    }  # fmt: skip
    assert not config.instance_group[0].secondary_devices


def test_an_onnx_files_config_publishes_no_bounds(exported, tmp_path):
    config = read_config(export_triton(exported["full"][1].path, tmp_path / "repo").config)
    assert bounds(config) == {}
    assert TENSORRT_PARAMETER not in config.parameters


def test_an_engine_of_a_tensorrt_version_in_the_table_gets_its_container(tmp_path):
    _, container = export_engine(tmp_path, tensorrt="10.3.0")
    assert "nvcr.io/nvidia/tritonserver:24.08-py3" in container


def test_an_engine_of_an_unknown_tensorrt_version_is_told_how_to_pick_a_container(tmp_path):
    _, container = export_engine(tmp_path, tensorrt="10.99.1")
    assert "TensorRT 10.99.1 is not in emoedge's table of Triton containers" in container
    assert "release-notes" in container and "\n" not in container


def test_a_version_compatible_engine_is_told_the_servers_flag(tmp_path):
    _, container = export_engine(tmp_path, tensorrt="10.3.0", version_compatible=True)
    assert "--backend-config=tensorrt,version-compatible=true" in container and "10.3.0 or later" in container


def test_a_second_model_joins_the_repository_and_a_new_export_replaces_the_first(exported, tmp_path):
    full, body_place = exported["full"][1].path, exported["body_place"][1].path
    export_triton(full, tmp_path / "repo", name="a")
    export_triton(body_place, tmp_path / "repo", name="b")
    export_triton(body_place, tmp_path / "repo", name="a")
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["a", "b"]
    card = json.loads(read_config(tmp_path / "repo" / "a" / "config.pbtxt").parameters["emoedge_card"].string_value)
    assert card["branches"] == ["body", "place"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"name": "../x"}, "model name '../x'"), ({"instances": 0}, "instances 0"),
     ({"kind": "tpu"}, "instance kind 'tpu'")],
)  # fmt: skip
def test_bad_requests_are_one_line(exported, kwargs, message, tmp_path):
    with pytest.raises(EmoedgeError, match=message):
        export_triton(exported["full"][1].path, tmp_path / "repo", **kwargs)
    assert not (tmp_path / "repo").exists()


def test_cli_writes_the_repository_and_refuses_checkpoints_and_cpu_engines(exported, tmp_path):
    checkpoint, result = exported["full"]
    proc = run_cli("export", "triton", str(result.path), "-o", str(tmp_path / "repo"), "--name", "emo")
    assert proc.returncode == 0, proc.stderr
    assert "grpc://HOST:8001/emo" in proc.stdout
    read_config(tmp_path / "repo" / "emo" / "config.pbtxt")
    assert_one_line_error(
        run_cli("export", "triton", str(checkpoint), "-o", str(tmp_path / "r2")), "export a checkpoint to ONNX first"
    )
    engine = tmp_path / "model.engine"
    engine.write_bytes(ENGINE_BYTES)
    write_engine_info(engine, engine_info(read_onnx_card(result.path)))
    proc = run_cli("export", "triton", str(engine), "-o", str(tmp_path / "r3"), "--instance-kind", "cpu")
    assert_one_line_error(proc, "instance kind 'cpu'", "only on the GPU")
