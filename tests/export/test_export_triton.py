"""`emoedge export triton`: a model repository whose config.pbtxt Triton's own schema (tritonclient's protobuf) reads,
with the tensors of the file and the card in its parameters; bad requests are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli  # type: ignore[import-not-found]
from engine_helpers import engine_info  # type: ignore[import-not-found]
from google.protobuf import text_format
from model_helpers import legacy_onnx  # type: ignore[import-not-found]

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.triton import export_triton
from emoedge.formats.engine import write_engine_info
from emoedge.formats.onnx import read_onnx_card

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
