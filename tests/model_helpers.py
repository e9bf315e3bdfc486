"""ONNX files as emoedge exported them before the `frame` input, for the tests that such files still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from emoedge.export.onnx import example_inputs, spread


def legacy_onnx(checkpoint: Path, out: Path) -> Path:
    """An ONNX file as emoedge exported them before the `frame` input: image [1,3,H,W], body [N,3,h,w]."""
    from emoedge.formats.checkpoint import load_trained_model
    from emoedge.formats.onnx import CARD_KEY, FORMAT, FORMAT_KEY
    from emoedge.model.deploy import DeployModel

    net, card, _ = load_trained_model(checkpoint)
    deploy = DeployModel(net).eval()

    class SingleFrame(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.deploy = deploy

        def forward(self, image, body):
            return self.deploy(image, body, torch.zeros(body.shape[0], dtype=torch.int64))

    image, body = example_inputs(card, 2)
    names = list(deploy.output_names)
    torch.onnx.export(
        SingleFrame().eval(), (image, body), str(out), dynamo=False, input_names=["image", "body"], output_names=names,
        dynamic_axes={"body": {0: "persons"}, **{n: {0: "persons"} for n in names}},
    )  # fmt: skip
    model = onnx.load(str(out))
    onnx.helper.set_model_props(model, {CARD_KEY: card.to_json(), FORMAT_KEY: FORMAT})
    onnx.save(model, str(out))
    return out


def assert_outputs_close(backend, reference, tolerance: dict[str, float], shapes) -> None:
    """`backend` against `reference` on random inputs of each (N persons, F frames) in `shapes`, persons dealt over
    the frames: the same outputs, each within its `tolerance`."""
    for persons, frames in shapes:
        image, body = (t.numpy() for t in example_inputs(reference.card, persons, seed=persons, frames=frames))
        frame = spread(persons, frames).numpy()
        got, want = backend.infer(image, body, frame), reference.infer(image, body, frame)
        assert set(got) == set(want)
        for key, value in want.items():
            assert got[key].shape == value.shape, (key, persons, frames)
            np.testing.assert_allclose(got[key], value, rtol=0, atol=tolerance[key], err_msg=f"{key}, N={persons}, "
                                       f"F={frames}")  # fmt: skip


def one_line(exc) -> str:
    """The message of a raised EmoedgeError (`pytest.raises`' ExceptionInfo), asserted to be one line."""
    message = str(exc.value)
    assert "\n" not in message, message
    return message
