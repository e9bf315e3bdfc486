"""Persons beyond a backend's N bounds: sliced and padded once, in base.Backend, for every backend (issue 23, fault 2).

Why real backends with narrowed bounds: the slicing must give exactly the scores of one unbounded call — the same
persons, in the same order, each with its own frame — whatever the inputs are (numpy arrays or torch tensors).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoedge.backends import load_model
from emoedge.backends.base import Backend
from emoedge.bench.models import random_checkpoint
from emoedge.export.onnx import example_inputs, export_onnx, spread


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slices")
    return export_onnx(random_checkpoint(root / "model.pt", seed=3), root / "model.onnx").path


class _Counting:
    """Wraps a backend's `_infer` to record the N of every model call."""

    def __init__(self, backend: Backend) -> None:
        self.sizes: list[int] = []
        self._inner = backend._infer
        backend._infer = self  # type: ignore[method-assign]

    def __call__(self, image, body, frame):
        self.sizes.append(int(body.shape[0]))
        return self._inner(image, body, frame)


@pytest.mark.parametrize(
    "persons, low, high, calls",
    [(40, 1, 32, [32, 8]), (3, 4, 4, [4]), (9, 4, 4, [4, 4, 4]), (5, 1, 8, [5])],
)
@pytest.mark.parametrize("as_torch", [False, True])
def test_sliced_and_padded_calls_give_the_scores_of_one_call(onnx_path, persons, low, high, calls, as_torch):
    whole = load_model(onnx_path, device="cpu")
    bounded = load_model(onnx_path, device="cpu")
    bounded.min_persons, bounded.max_persons = low, high
    counting = _Counting(bounded)
    image, body = example_inputs(whole.card, persons, seed=persons, frames=2)
    frame = spread(persons, 2).numpy()
    if not as_torch:
        image, body = image.numpy(), body.numpy()
    expected = whole.infer(image, body, frame)
    got = bounded.infer(image, body, frame)
    assert counting.sizes == calls
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=name)


def test_bounds_apply_within_each_group_of_frames(onnx_path):
    """A backend taking one frame per call and at most 2 persons: 3 frames × 3 persons → 6 calls of N ≤ 2."""
    whole = load_model(onnx_path, device="cpu")
    bounded = load_model(onnx_path, device="cpu")
    bounded.max_frames, bounded.max_persons = 1, 2
    counting = _Counting(bounded)
    image, body = example_inputs(whole.card, 9, seed=1, frames=3)
    frame = spread(9, 3).numpy()
    np.testing.assert_allclose(bounded.infer(image, body, frame)["scores"], whole.infer(image, body, frame)["scores"],
                               atol=1e-5)  # fmt: skip
    assert counting.sizes == [2, 1] * 3
