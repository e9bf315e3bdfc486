"""Input pipelines for the two inputs of one person: the whole image and the body crop.

Training (paper §4.2): one horizontal-flip decision shared by both inputs (the image is flipped and the box
mirrored *before* cropping, so the crop is always the flipped person), then per input: resize, grid
distortion, affine shift/scale/rotate and a light colour jitter (albumentations 2.x). Evaluation: crop,
resize, normalise. Every random choice comes from the `seed` of the call, so an item is the same in any
worker, in any order, in any process.

`crop_box`, `resize` and `normalize` are the deterministic steps, shared with evaluation and usable by the
runtime so that deployment preprocesses exactly as training evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

Box = tuple[float, float, float, float]


def crop_box(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel box `x1, y1, x2, y2` (x2/y2 exclusive) covering `bbox`, inside the image, >= 1 px wide/high.

    Coordinates are continuous (pixel i spans [i, i+1)), so the box is floored/ceiled outward; a box of
    zero area, or one lying outside the image, becomes the nearest 1-pixel crop. That fallback only keeps a
    detector's degenerate box from failing a frame: annotated boxes are checked where they are read
    (`records.box_problem`), so no training record reaches it.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    ix1 = min(max(math.floor(x1), 0), width - 1)
    iy1 = min(max(math.floor(y1), 0), height - 1)
    ix2 = min(max(math.ceil(x2), ix1 + 1), width)
    iy2 = min(max(math.ceil(y2), iy1 + 1), height)
    return ix1, iy1, ix2, iy2


def mirror_box(bbox: Sequence[float], width: int) -> Box:
    """The box of the same pixels after a horizontal flip of a `width`-wide image."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return (width - x2, y1, width - x1, y2)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2 resize to (height, width): area averaging when shrinking both ways, bilinear otherwise."""
    height, width = size
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrink = image.shape[0] >= height and image.shape[1] >= width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (3, H, W) float32 `(x/255 - mean) / std` (mean/std on the 0..1 scale)."""
    mean255 = np.asarray(mean, dtype=np.float32) * 255.0
    inv_std255 = 1.0 / (np.asarray(std, dtype=np.float32) * 255.0)
    out = (image.astype(np.float32) - mean255) * inv_std255
    return np.ascontiguousarray(out.transpose(2, 0, 1))


class PairTransform:
    """Callable `(image, bbox, seed) -> (whole image tensor [3,H,W], body tensor [3,h,w])`, both normalised.

    Sizes are (height, width), mean/std on the 0..1 scale; `flip_p`, `geometric` (grid distortion + affine) and
    `color` (jitter) only matter when training.
    """

    def __init__(
        self,
        train: bool,
        image_size: tuple[int, int],
        body_size: tuple[int, int],
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        *,
        flip_p: float = 0.5,
        geometric: bool = True,
        color: bool = True,
    ) -> None:
        self.train = bool(train)
        self.image_size = _size(image_size, "image_size")
        self.body_size = _size(body_size, "body_size")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean {mean} / std {std}: expected 3 values each, std > 0")
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.flip_p = float(flip_p) if self.train else 0.0
        # One pipeline per input, so that each gets its own random draws.
        self._image_aug = _augmenter(geometric, color) if self.train else None
        self._body_aug = _augmenter(geometric, color) if self.train else None

    def __call__(self, image: np.ndarray, bbox: Sequence[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        rng = np.random.default_rng(int(seed) % 2**64)
        flip = bool(rng.random() < self.flip_p)
        image_seed, body_seed = (int(s) for s in rng.integers(0, 2**32, size=2))
        height, width = image.shape[:2]
        if flip:
            image = cv2.flip(image, 1)
            bbox = mirror_box(bbox, width)
        x1, y1, x2, y2 = crop_box(bbox, width, height)
        body = image[y1:y2, x1:x2]
        return (
            self._prepare(image, self.image_size, self._image_aug, image_seed),
            self._prepare(body, self.body_size, self._body_aug, body_seed),
        )

    def _prepare(self, image: np.ndarray, size: tuple[int, int], aug: Any, seed: int) -> torch.Tensor:
        image = resize(image, size)
        if aug is not None:
            aug.set_random_seed(seed)
            image = aug(image=np.ascontiguousarray(image))["image"]
        return torch.from_numpy(normalize(image, self.mean, self.std))

    def __repr__(self) -> str:
        return (
            f"PairTransform(train={self.train}, image_size={self.image_size}, body_size={self.body_size}, "
            f"flip_p={self.flip_p}, augment={self._image_aug is not None})"
        )


# The factory name the trainer, evaluation and runtime use: the training (`train=True`) or evaluation pipeline.
build_transform = PairTransform


def _augmenter(geometric: bool, color: bool) -> Any:
    """albumentations pipeline applied after resizing (cheaper on the small image), or None if empty."""
    if not (geometric or color):
        return None
    import albumentations as A  # optional dependency (the `train` extra)

    steps: list[Any] = []
    if geometric:
        steps += [
            A.GridDistortion(num_steps=5, distort_limit=0.2, border_mode=cv2.BORDER_REFLECT_101, p=0.3),
            A.Affine(
                scale=(0.9, 1.1),
                translate_percent=(-0.06, 0.06),
                rotate=(-10, 10),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.5,
            ),
        ]
    if color:
        steps.append(A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5))
    return A.Compose(steps, seed=0)


def _size(value: Sequence[int], name: str) -> tuple[int, int]:
    if len(value) != 2 or min(int(v) for v in value) < 1:
        raise ValueError(f"{name} {value}: expected (height, width) >= 1")
    return int(value[0]), int(value[1])
