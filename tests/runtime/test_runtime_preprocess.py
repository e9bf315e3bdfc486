"""Engine inputs match what evaluation fed the model; roi_align crops match the cv2 crops; the frame is untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from runtime.runtime_media import tiny_card  # type: ignore[import-not-found]

from emoedge.data.transforms import build_transform
from emoedge.runtime.preprocess import Preprocessor

CARD = tiny_card(image_size=(96, 128), body_size=(64, 48))
# Boxes: shrinking both ways, enlarging, fractional, running past the frame's edge.
BOXES = np.array([[10, 20, 170, 230], [200, 40, 230, 70], [50.4, 60.7, 120.2, 200.9], [280, 180, 340, 260]], np.float32)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A smooth BGR image with some texture (pure noise would make any two resamplings disagree)."""
    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    image = np.stack([128 + 100 * np.sin(x / 17), 128 + 100 * np.cos(y / 13), (x + y) / 560 * 255], axis=-1)
    return image.clip(0, 255).astype(np.uint8)


def test_inputs_equal_the_evaluation_transform(frame: np.ndarray) -> None:
    """The cv2 path is exactly evaluation's crop + resize + normalise (on RGB) for every person."""
    before = frame.copy()
    inputs = Preprocessor(CARD, crops="cv2")(frame, BOXES)
    assert np.array_equal(frame, before)
    assert inputs.image.shape == (1, 3, 96, 128) and inputs.body.shape == (4, 3, 64, 48)
    transform = build_transform(False, CARD.image_size, CARD.body_size, CARD.mean, CARD.std)
    rgb = frame[..., ::-1].copy()
    for i, box in enumerate(BOXES):
        whole, body = transform(rgb, box.tolist())
        torch.testing.assert_close(inputs.image[0], whole, atol=1e-5, rtol=0)
        torch.testing.assert_close(inputs.body[i], body, atol=1e-5, rtol=0)


def test_roi_align_crops_match_the_cv2_crops(frame: np.ndarray) -> None:
    """One batched roi_align ≈ per-crop area/bilinear resizing: same pixels, resampled slightly differently."""
    reference = Preprocessor(CARD, crops="cv2").crops(frame, BOXES)
    batched = Preprocessor(CARD, crops="roi_align").crops(frame, BOXES)
    assert batched.shape == reference.shape
    diff = (batched - reference).abs()  # normalised units: 0.06 ≈ 3.4 grey levels
    assert diff.mean() < 0.01 and diff.max() < 0.06, (diff.mean(), diff.max())  # measured: 0.004, 0.028


@pytest.mark.parametrize("crops", ["cv2", "roi_align"])
def test_no_persons_gives_an_empty_batch(frame: np.ndarray, crops: str) -> None:
    body = Preprocessor(CARD, crops=crops).crops(frame, np.zeros((0, 4), np.float32))
    assert body.shape == (0, 3, 64, 48)


def test_crop_method_follows_the_device() -> None:
    assert Preprocessor(CARD, "cpu").crop_method == "cv2"
    if torch.cuda.is_available():
        assert Preprocessor(CARD, "cuda").crop_method == "roi_align"
