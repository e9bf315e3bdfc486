"""The FP16 and INT8 graphs shipped for GPU machines without Model Optimizer (tests/data/gpu, see its README): they
must keep loading in this version of emoedge and ONNX Runtime, carry an emoedge card and the precision they are named
for, and keep the `frame` input's meaning, or the GPU tests on a Jetson would test nothing. Runs on any CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoedge.backends import load_model
from emoedge.export.onnx import example_inputs, spread
from emoedge.formats.onnx import int8_target, load_onnx, read_onnx_card

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "gpu"
MAX_BYTES = 1_000_000  # all of tests/data/gpu: it lives in the repository


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_shipped_graph_loads_with_its_card_and_precision(precision):
    path = SHIPPED / f"tiny-{precision}.onnx"
    card = read_onnx_card(path)
    assert card.branches == ("body", "place")  # a context branch: the frame gather is in the graph
    backend = load_model(path, device="cpu")
    assert backend.card == card and backend.precision == precision
    assert int8_target(load_onnx(path)) == ("tensorrt" if precision == "int8" else None)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_shipped_graph_gives_each_person_its_own_frame(precision):
    """Persons dealt over two frames score as they do in calls of their own frame alone."""
    backend = load_model(SHIPPED / f"tiny-{precision}.onnx", device="cpu")
    image, body = (t.numpy() for t in example_inputs(backend.card, 6, frames=2))
    frame = spread(6, 2).numpy()
    together = backend.infer(image, body, frame)
    assert together["scores"].shape == (6, 26) and np.isfinite(together["scores"]).all()
    for index in (0, 1):
        alone = backend.infer(image[index : index + 1], body[frame == index])
        for name, value in alone.items():
            np.testing.assert_allclose(together[name][frame == index], value, rtol=0, atol=1e-4, err_msg=name)
    # The two frames differ, so a graph that ignored `frame` (every person on frame 0) would fail the loop above.
    other = backend.infer(image[1:2], body[frame == 0])["scores"]
    assert np.abs(other - together["scores"][frame == 0]).max() > 1e-3


def test_shipped_graphs_stay_small():
    assert sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file()) < MAX_BYTES
