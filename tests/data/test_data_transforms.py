"""Paired transforms: shared flip, determinism from the seed, degenerate boxes, eval normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoedge.data.transforms import build_transform, crop_box, mirror_box, normalize

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
BOX = (10.0, 5.0, 30.0, 50.0)  # 20 wide, 45 high, off-centre: flipping moves it


@pytest.fixture
def asymmetric() -> np.ndarray:
    """60 x 80 image where no column equals its mirror: noise plus a horizontal ramp."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 128, (60, 80, 3)).astype(np.uint8)
    image += np.linspace(0, 120, 80, dtype=np.uint8)[None, :, None]
    return image


def test_flip_is_shared_by_whole_image_and_body(asymmetric: np.ndarray) -> None:
    flip_only = build_transform(True, (60, 80), (45, 20), MEAN, STD, flip_p=1.0, geometric=False, color=False)
    plain = build_transform(False, (60, 80), (45, 20), MEAN, STD)
    whole, body = flip_only(asymmetric, BOX, seed=123)

    flipped = np.ascontiguousarray(asymmetric[:, ::-1])
    mirrored = mirror_box(BOX, 80)
    assert mirrored == (50.0, 5.0, 70.0, 50.0)
    expected_whole, expected_body = plain(flipped, mirrored, seed=0)
    assert torch.equal(whole, expected_whole)
    assert torch.equal(body, expected_body)
    # The body crop is the same person, mirrored (crop size == body size, so no resampling here).
    own_crop = asymmetric[5:50, 10:30]
    assert torch.equal(body, torch.from_numpy(normalize(np.ascontiguousarray(own_crop[:, ::-1]), MEAN, STD)))
    unflipped_whole, unflipped_body = plain(asymmetric, BOX, seed=0)
    assert not torch.equal(whole, unflipped_whole) and not torch.equal(body, unflipped_body)


def test_no_flip_and_no_augmentation_equals_eval(asymmetric: np.ndarray) -> None:
    none = build_transform(True, (32, 48), (24, 16), MEAN, STD, flip_p=0.0, geometric=False, color=False)
    plain = build_transform(False, (32, 48), (24, 16), MEAN, STD)
    for a, b in zip(none(asymmetric, BOX, seed=5), plain(asymmetric, BOX, seed=9)):
        assert torch.equal(a, b)


def test_flip_fires_about_half_the_time(asymmetric: np.ndarray) -> None:
    flip = build_transform(True, (60, 80), (45, 20), MEAN, STD, geometric=False, color=False)
    plain_whole, _ = build_transform(False, (60, 80), (45, 20), MEAN, STD)(asymmetric, BOX, 0)
    flips = sum(not torch.equal(flip(asymmetric, BOX, seed)[0], plain_whole) for seed in range(200))
    assert 70 < flips < 130


def test_same_seed_same_tensors_other_seed_other_tensors(asymmetric: np.ndarray) -> None:
    make = lambda: build_transform(True, (48, 64), (32, 24), MEAN, STD)  # noqa: E731
    first, second = make(), make()  # separate instances: nothing carried between calls or objects
    for seed in (0, 1, 2**40 + 3):
        a = first(asymmetric, BOX, seed)
        b = second(asymmetric, BOX, seed)
        again = first(asymmetric, BOX, seed)
        for x, y, z in zip(a, b, again):
            assert torch.equal(x, y) and torch.equal(x, z)
    outputs = [first(asymmetric, BOX, seed)[0] for seed in range(8)]
    assert len({o.numpy().tobytes() for o in outputs}) >= 6


@pytest.mark.parametrize("train", [True, False])
def test_outputs_have_the_requested_shapes_and_dtype(asymmetric: np.ndarray, train: bool) -> None:
    whole, body = build_transform(train, (40, 56), (28, 20), MEAN, STD)(asymmetric, BOX, 3)
    assert whole.shape == (3, 40, 56) and body.shape == (3, 28, 20)
    assert whole.dtype == body.dtype == torch.float32
    assert torch.isfinite(whole).all() and torch.isfinite(body).all()


@pytest.mark.parametrize(
    "box",
    [
        (10, 10, 10, 10),
        (10.2, 10.4, 10.3, 10.5),
        (79.5, 59.5, 80, 60),
        (80, 60, 80, 60),
        (200, 200, 210, 220),
        (-30, -20, -1, -2),
        (30, 40, 10, 5),
    ],
)
@pytest.mark.parametrize("train", [True, False])
def test_degenerate_boxes_still_give_a_valid_crop(asymmetric: np.ndarray, box: tuple, train: bool) -> None:
    _, body = build_transform(train, (32, 32), (24, 16), MEAN, STD)(asymmetric, box, 11)
    assert body.shape == (3, 24, 16) and torch.isfinite(body).all()


@pytest.mark.parametrize(
    "box, expected",
    [
        ((10, 5, 30, 50), (10, 5, 30, 50)),
        ((10.5, 5.2, 29.1, 49.9), (10, 5, 30, 50)),  # outward to whole pixels
        ((10, 10, 10, 10), (10, 10, 11, 11)),  # zero area: 1 px
        ((80, 60, 80, 60), (79, 59, 80, 60)),  # on the far edge: the last pixel
        ((-5, -5, 100, 100), (0, 0, 80, 60)),  # clipped
        ((30, 50, 10, 5), (10, 5, 30, 50)),  # corners given the wrong way round
    ],
)
def test_crop_box(box: tuple, expected: tuple) -> None:
    assert crop_box(box, 80, 60) == expected


def test_eval_normalisation_uses_mean_and_std_on_the_unit_scale() -> None:
    image = np.empty((20, 30, 3), dtype=np.uint8)
    image[:] = (255, 0, 128)
    whole, body = build_transform(False, (20, 30), (10, 10), MEAN, STD)(image, (0, 0, 30, 20), 0)
    expected = (np.array([255, 0, 128]) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(whole.mean(dim=(1, 2)).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(body.mean(dim=(1, 2)).numpy(), expected, rtol=1e-5)
