"""A served engine's profile bounds, from its Triton config to the client's calls, without a server (issue 23, fault 2).

Why no server: what can go wrong is the exchange of bounds (the export writes them as config parameters, the `triton`
backend reads them back, as tritonclient's gRPC client hands them over with `as_json`) and the calls the client then
makes; only the network request itself is replaced here, by one that records what it would send.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from engine_helpers import BODY_CARD, engine_info  # type: ignore[import-not-found]

from emoedge.errors import EmoedgeError
from emoedge.formats.engine import write_engine_info
from emoedge.formats.triton import Bounds, bounds_from_parameters, describe, model_config

pytest.importorskip("tritonclient", reason="the `triton` extra is not installed")
from google.protobuf.json_format import MessageToJson

from emoedge.backends.triton import TritonBackend

DLA = {"persons": (4, 4, 4), "frames": (2, 2, 2), "frame_input": True, "dla_core": 0}


def served_parameters(tmp_path, **fields) -> dict:
    """The `parameters` of an engine's config as the gRPC client's get_model_config(as_json=True) returns them."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(bytes(100))  # as many bytes as engine_info's sidecar says
    write_engine_info(engine, engine_info(BODY_CARD, **fields))
    config = model_config(describe(engine), "emo")
    return json.loads(MessageToJson(config, preserving_proto_field_name=True))["parameters"]


def test_the_client_reads_back_the_bounds_a_dla_engines_config_publishes(tmp_path):
    assert bounds_from_parameters(served_parameters(tmp_path, **DLA), "model x") == Bounds(4, 4, 2, 2)


def test_a_single_frame_gpu_engine_gives_its_n_range_and_one_frame(tmp_path):
    parameters = served_parameters(tmp_path, persons=(1, 4, 16))
    assert bounds_from_parameters(parameters, "model x") == Bounds(1, 16, 1, 1)


def test_a_config_without_bounds_means_any_n_and_f():
    assert bounds_from_parameters({"emoedge_card": {"string_value": "{}"}}, "model x") == Bounds(1, None, 1, None)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [({"emoedge_max_persons": {"string_value": "0"}}, "'emoedge_max_persons' is '0', expected a whole number >= 1"),
     ({"emoedge_min_persons": {"string_value": "four"}}, "'emoedge_min_persons' is 'four'"),
     ({"emoedge_max_frames": {"string_value": "2.5"}}, "'emoedge_max_frames' is '2.5'"),
     ({"emoedge_min_frames": {}}, "'emoedge_min_frames' is None"),
     ({"emoedge_min_persons": {"string_value": "8"}, "emoedge_max_persons": {"string_value": "4"}},
      "'emoedge_min_persons' is 8, above 'emoedge_max_persons' 4")],
)  # fmt: skip
def test_a_malformed_bound_is_one_line_naming_the_parameter(parameters, message):
    with pytest.raises(EmoedgeError, match=message) as caught:
        bounds_from_parameters(parameters, "model grpc://h:8001/emo")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("model grpc://h:8001/emo: parameter")


class _Recording:
    """Stands in for the network request: records each request's shapes and answers with zeros of the right rows."""

    def __init__(self) -> None:
        self.shapes: list[dict[str, tuple[int, ...]]] = []

    def __call__(self, feeds, outputs):
        self.shapes.append({name: value.shape for name, value in feeds.items()})
        rows = len(feeds["body"])
        answer = {"scores": np.zeros((rows, 26), np.float32), "modality_weights": np.zeros((rows, 3), np.float32)}
        return type("Answer", (), {"as_numpy": staticmethod(answer.__getitem__)})()


def dla_client(tmp_path) -> tuple[TritonBackend, _Recording]:
    """A TritonBackend as __init__ leaves it for the DLA engine's config, its requests recorded instead of sent."""
    client = TritonBackend.__new__(TritonBackend)
    client.card, client.has_frame = BODY_CARD, True
    client.inputs = {"image": np.float32, "body": np.float32, "frame": np.int64}
    client.outputs = ["scores", "modality_weights"]
    bounds = bounds_from_parameters(served_parameters(tmp_path, **DLA), "model x")
    client.min_persons, client.max_persons = bounds.min_persons, bounds.max_persons
    client.min_frames, client.max_frames = bounds.min_frames, bounds.max_frames
    client._request = _Recording()  # type: ignore[method-assign]
    return client, client._request


@pytest.mark.parametrize(("frames", "persons", "calls"), [(1, 1, 1), (3, 9, 3), (2, 4, 1)])
def test_a_dla_engines_client_sends_only_its_fixed_n_and_f(tmp_path, frames, persons, calls):
    client, recording = dla_client(tmp_path)
    h, w = BODY_CARD.image_size
    image = np.zeros((frames, 3, h, w), np.float32)
    body = np.zeros((persons, 3, *BODY_CARD.body_size), np.float32)
    out = client.infer(image, body, np.arange(persons) % frames)
    assert len(recording.shapes) == calls
    for shapes in recording.shapes:
        assert (shapes["image"][0], shapes["body"][0], shapes["frame"][0]) == (2, 4, 4)
    assert out["scores"].shape == (persons, 26)
