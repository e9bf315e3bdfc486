"""Shapes of model calls, decided once in base.Backend for every backend: N sliced and padded to a backend's bounds
(an engine's profile, a DLA engine's fixed N), F and N padded up to shape buckets (static-shape devices, CUDA graphs),
and the warm-up's plan of the shapes a run will meet.

Why real backends with narrowed bounds: the slicing must give exactly the scores of one unbounded call — the same
persons, in the same order, each with its own frame — whatever the inputs are (numpy arrays or torch tensors).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoedge.backends import load_model
from emoedge.backends.base import Backend, bucket
from emoedge.bench.models import random_checkpoint
from emoedge.export.onnx import example_inputs, export_onnx, spread


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slices")
    return export_onnx(random_checkpoint(root / "model.pt", seed=3), root / "model.onnx").path  # model.pt beside it


class _Counting:
    """Wraps a backend's `_infer` to record the N of every model call."""

    def __init__(self, backend: Backend) -> None:
        self.sizes: list[int] = []
        self.shapes: list[tuple[int, int]] = []
        self._inner = backend._infer
        backend._infer = self  # type: ignore[method-assign]

    def __call__(self, image, body, frame):
        self.sizes.append(int(body.shape[0]))
        self.shapes.append((int(image.shape[0]), int(body.shape[0])))
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


def test_buckets_are_powers_of_two_capped_by_the_bound():
    assert [bucket(n) for n in (1, 2, 3, 4, 5, 9, 16, 17)] == [1, 2, 4, 4, 8, 16, 16, 32]
    assert [bucket(n, top=24) for n in (17, 24)] == [24, 24] and bucket(3, top=3) == 3


BACKENDS = {  # every backend that runs here, by (model file, device)
    "torch": ("pt", "cpu"),
    "onnxruntime": ("onnx", "cpu"),
    "openvino": ("onnx", "openvino:CPU"),
}


@pytest.mark.parametrize("name", BACKENDS)
def test_every_n_up_to_the_maximum_runs_at_its_bucket_with_the_scores_of_one_call(onnx_path, name):
    suffix, device = BACKENDS[name]
    path = onnx_path.with_suffix(f".{suffix}")
    whole = load_model(path, device=device, precision="fp32")
    bucketed = load_model(path, device=device, precision="fp32")
    bucketed.bucketed, bucketed.max_persons, bucketed.max_frames = True, 12, 3
    counting = _Counting(bucketed)
    for persons in range(1, 26):
        frames = 1 + persons % 3
        image, body = example_inputs(whole.card, persons, seed=persons, frames=frames)
        frame = spread(persons, frames).numpy()
        got, expected = bucketed.infer(image, body, frame), whole.infer(image, body, frame)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], atol=1e-4, err_msg=f"{name} N={persons} {key}")
    assert set(counting.shapes) <= {(f, n) for f in (1, 2, 3) for n in (1, 2, 4, 8, 12)}
    assert {n for _, n in counting.shapes} == {1, 2, 4, 8, 12}


def test_the_warm_up_plan_is_every_bucket_a_run_can_meet(onnx_path):
    backend = load_model(onnx_path, device="cpu")
    assert backend.warm_shapes(frames=2, persons=40) == [(2, 1)]  # dynamic shapes: one call sets them up
    backend.bucketed, backend.max_persons, backend.max_frames = True, 12, 4
    assert backend.warm_shapes(frames=3, persons=9) == [(f, n) for f in (1, 2, 4) for n in (1, 2, 4, 8, 12)]
    assert backend.warm_shapes(frames=1, persons=3) == [(1, 1), (1, 2), (1, 4)]
    backend.min_persons = backend.max_persons = 4  # a DLA engine: one N
    assert backend.warm_shapes(frames=1, persons=9) == [(1, 4)]


def test_after_warming_a_run_meets_no_new_shape(onnx_path):
    backend = load_model(onnx_path, device="cpu")
    backend.bucketed, backend.max_persons = True, 8
    counting = _Counting(backend)
    calls, seconds = backend.warm(frames=2, persons=6)
    warmed = set(counting.shapes)
    assert calls == len(warmed) == len(backend.warm_shapes(2, 6)) and seconds >= 0
    for persons in range(1, 7):
        for frames in (1, 2):
            image, body = example_inputs(backend.card, persons, frames=frames)
            backend.infer(image, body, spread(persons, frames).numpy())
    assert set(counting.shapes) == warmed
