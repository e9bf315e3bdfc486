"""ONNX export: parity with PyTorch, context evaluated once per frame, self-describing metadata, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import example_inputs, export_onnx, spread
from emoedge.formats.checkpoint import load_trained_model, read_checkpoint
from emoedge.formats.onnx import CARD_KEY, FORMAT, FORMAT_KEY, read_onnx_card
from emoedge.model.deploy import DeployModel

TOLERANCE = 1e-4
TINY_CONVS = 4  # Conv layers of one "tiny" backbone after BatchNorm folding


def run_both(
    checkpoint: Path, onnx_path: Path, persons: int, frames: int = 1
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    net, card, _ = load_trained_model(checkpoint)
    deploy = DeployModel(net).eval()
    image, body = example_inputs(card, persons, seed=100 + persons, frames=frames)
    frame = spread(persons, frames)
    with torch.inference_mode():
        expected = dict(zip(deploy.output_names, (t.numpy() for t in deploy(image, body, frame))))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feeds = {"image": image.numpy(), "body": body.numpy(), "frame": frame.numpy()}
    return expected, dict(zip(names, session.run(names, feeds)))


@pytest.mark.parametrize("name", ["full", "body_place", "concat", "body_only"])
@pytest.mark.parametrize(("frames", "persons"), [(1, 1), (1, 3), (1, 16), (3, 7)])
def test_onnxruntime_fp32_matches_pytorch(exported, name, frames, persons):
    checkpoint, result = exported[name]
    expected, got = run_both(checkpoint, result.path, persons, frames)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].shape == value.shape == (persons, 26 if key == "scores" else 3)
        np.testing.assert_allclose(got[key], value, rtol=0, atol=TOLERANCE, err_msg=key)


def test_a_body_only_graph_keeps_every_input_and_runs_in_each_backend(exported):
    """The exporter drops inputs a model does not read; emoedge graphs keep all three, so backends feed them alike."""
    from emoedge.backends import load_model

    path = exported["body_only"][1].path
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["image", "body", "frame"]
    for device in ("cpu", "openvino:CPU"):
        backend = load_model(path, device=device, precision="fp32")
        image, body = example_inputs(backend.card, 3, frames=2)
        assert backend.infer(image, body, spread(3, 2).numpy())["scores"].shape == (3, len(backend.card.categories))


def test_export_reports_its_own_parity_check(exported):
    _, result = exported["full"]
    assert result.shapes_checked == ((1, 1), (1, 3), (2, 3))
    assert result.max_abs_diff <= TOLERANCE and set(result.diffs) == {"scores", "modality_weights", "vad"}
    assert result.parity_line.startswith("parity: max |Δscore| = ") and "over F×N = 1x1 1x3 2x3" in result.parity_line


@pytest.mark.parametrize(
    ("name", "outputs"),
    [("full", ["scores", "modality_weights", "vad"]), ("body_place", ["scores", "modality_weights"])],
)
def test_graph_signature(exported, name, outputs):
    model = onnx.load(str(exported[name][1].path))
    values = [*model.graph.input, *model.graph.output]
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    assert [i.name for i in model.graph.input] == ["image", "body", "frame"]
    assert [o.name for o in model.graph.output] == outputs
    assert dims["image"] == ["frames", 3, 96, 96] and dims["body"] == ["persons", 3, 64, 64]
    assert dims["frame"] == ["persons"] and model.graph.input[2].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert all(dims[o] == ["persons", 26 if o == "scores" else 3] for o in outputs)


def downstream(model: onnx.ModelProto, source: str) -> set[int]:
    """Indices of the nodes that depend, directly or not, on graph input `source` (nodes are topologically sorted)."""
    tainted, nodes = {source}, set()
    for index, node in enumerate(model.graph.node):
        if tainted.intersection(node.input):
            nodes.add(index)
            tainted.update(node.output)
    return nodes


@pytest.mark.parametrize(("name", "contexts"), [("full", 2), ("body_place", 1)])
def test_context_backbones_are_evaluated_once_per_frame_whatever_n(exported, name, contexts):
    """Every context convolution sees the F frames and nothing derived from `body` (and so from N)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(exported[name][1].path)))
    nodes = model.graph.node
    from_image, from_body = downstream(model, "image"), downstream(model, "body")
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    context_convs = [i for i in convs if i in from_image and i not in from_body]
    assert sum(1 for i in convs if "image" in nodes[i].input) == contexts
    assert len(context_convs) == contexts * TINY_CONVS
    assert len(convs) == (1 + contexts) * TINY_CONVS  # the body backbone once, nothing else
    batch = {v.name: v.type.tensor_type.shape.dim[0] for v in model.graph.value_info if v.type.tensor_type.shape.dim}
    assert all(batch[nodes[i].output[0]].dim_param == "frames" for i in context_convs)
    assert all(batch[nodes[i].output[0]].dim_param == "persons" for i in convs if i in from_body)


def test_metadata_round_trips_the_checkpoint_card(exported):
    checkpoint, result = exported["full"]
    card = ModelCard.from_dict(read_checkpoint(checkpoint)["card"])
    assert read_onnx_card(result.path) == card
    model = onnx.load(str(result.path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[FORMAT_KEY] == FORMAT and model.producer_name == "emoedge"
    assert card.thresholds != (0.5,) * 26  # the fixture's thresholds are not the defaults


def test_concat_fusion_reports_uniform_weights_over_its_branches(exported):
    checkpoint, result = exported["concat"]
    _, got = run_both(checkpoint, result.path, 2)
    np.testing.assert_array_equal(got["modality_weights"], [[0.5, 0.0, 0.5]] * 2)
    assert read_onnx_card(result.path).fusion == "concat"


def test_absent_branch_has_zero_weight(exported):
    checkpoint, result = exported["body_place"]
    _, got = run_both(checkpoint, result.path, 3)
    weights = got["modality_weights"]
    assert np.all(weights[:, 2] == 0) and np.all(weights[:, :2] > 0)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-6)


def test_unsimplified_export_at_another_opset(exported, tmp_path):
    checkpoint, _ = exported["body_place"]
    result = export_onnx(checkpoint, tmp_path / "plain.onnx", opset=17, simplify=False)
    assert result.max_abs_diff <= TOLERANCE
    assert onnx.load(str(result.path)).opset_import[0].version == 17
    assert read_onnx_card(result.path).branches == ("body", "place")


def test_bad_checkpoint_writes_nothing(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(EmoedgeError, match="model.pt"):
        export_onnx(bad, tmp_path / "out.onnx")
    assert list(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize(
    ("opset", "out", "needle"),
    [
        (5, "out.onnx", "opset 5: expected an integer from 11 to 20"),
        (99, "out.onnx", "opset 99: expected an integer from 11 to 20"),
        (True, "out.onnx", "opset: expected int, got True"),
        (18, "blocker/out.onnx", "blocker is a file, not a folder"),
    ],
)
def test_bad_options_are_one_line_before_any_work(exported, tmp_path, opset, out, needle):
    checkpoint, _ = exported["body_place"]
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(EmoedgeError, match=needle):
        export_onnx(checkpoint, tmp_path / out, opset=opset)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def foreign_model() -> onnx.ModelProto:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return onnx.helper.make_model(graph, producer_name="someone-else")


def with_metadata(props: dict[str, str]) -> onnx.ModelProto:
    model = foreign_model()
    onnx.helper.set_model_props(model, props)
    return model


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (foreign_model(), "not produced by emoedge"),
        (with_metadata({CARD_KEY: "{not json", FORMAT_KEY: FORMAT}), "not valid JSON"),
        (with_metadata({CARD_KEY: '{"name": "x"}', FORMAT_KEY: FORMAT}), "missing key"),
        (with_metadata({CARD_KEY: '{"name": "x"}', FORMAT_KEY: "emoedge-onnx-99"}), "not supported"),
        (b"\x00\x01garbage\xff" * 50, "not a readable ONNX file"),
        (b"", "not a readable ONNX file"),
        ("truncated", "not a readable ONNX file"),
        (None, "file not found"),
    ],
    ids=["foreign", "card-json", "card-fields", "format", "garbage", "empty", "truncated", "missing"],
)
def test_read_onnx_card_errors_are_one_line_naming_the_file(exported, tmp_path, content, message):
    path = tmp_path / "model.onnx"
    if isinstance(content, onnx.ModelProto):
        onnx.save(content, str(path))
    elif content == "truncated":
        data = exported["full"][1].path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(EmoedgeError, match=message) as info:
        read_onnx_card(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
