"""Frame → engine inputs: the whole frame once, and all persons' crops as one batch.

The whole frame goes through the functions evaluation used (`transforms.resize`, `normalize`), so the context input
is what the model saw in training. Crops are cut where `transforms.crop_box` cuts them, two ways:
  - "roi_align" (default on CUDA): torchvision's `roi_align` cuts and resizes all N boxes in ONE call on the
    engine's device, from one upload of the frame: no per-person kernel launches or host copies. `aligned=True` makes
    its bins cover exactly the cropped pixels, and adaptive sampling averages about one sample per source pixel, as
    area interpolation does when shrinking.
  - "cv2" (default on CPU): `transforms.resize` per crop, stacked, then normalised as one batch. On a CPU this is the
    fast way: measured on 2 cores, 4 crops of a 1280×720 frame to 224×224 take 0.3 ms with cv2 against 15 ms with
    `roi_align` (whose CPU kernel computes every bilinear weight afresh), and it is exactly training's resize.
Normalisation is linear, so it is applied after resizing, to the small crops. Arrays go to a GPU from pinned memory
without blocking (`upload`): a copy from pageable memory is staged by the driver and waits for all the work queued
before it on the stream (the previous tick's inference), which the host would otherwise sit out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from emoedge.card import ModelCard
from emoedge.data.transforms import crop_box, normalize, resize

CROP_METHODS = ("auto", "roi_align", "cv2")


@dataclass(frozen=True, eq=False)
class EngineInputs:
    """One engine call: `image` [1,3,H,W] and `body` [N,3,h,w], float32 on the engine's device."""

    image: torch.Tensor
    body: torch.Tensor


class Preprocessor:
    """The card's sizes and normalisation applied to BGR uint8 frames and their person boxes, on `device`."""

    def __init__(self, card: ModelCard, device: str | torch.device = "cpu", *, crops: str = "auto") -> None:
        if crops not in CROP_METHODS:
            raise ValueError(f"crops {crops!r}: expected one of {CROP_METHODS}")
        self.card = card
        self.device = torch.device(device)
        self.crop_method = ("roi_align" if self.device.type == "cuda" else "cv2") if crops == "auto" else crops
        self._mean = torch.tensor(card.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._inv_std = 1.0 / (torch.tensor(card.std, device=self.device).view(1, 3, 1, 1) * 255.0)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> EngineInputs:
        """Inputs for the persons whose `boxes` [N,4] (x1,y1,x2,y2 pixels) are given; `image` is only read."""
        context = cv2.cvtColor(resize(image, self.card.image_size), cv2.COLOR_BGR2RGB)  # resize is per channel
        whole = upload(normalize(context, self.card.mean, self.card.std)[None], self.device)
        return EngineInputs(whole, self.crops(image, boxes))

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        """[N,3,h,w] normalised RGB body crops of a BGR frame."""
        h, w = self.card.body_size
        if len(boxes) == 0:
            return torch.zeros((0, 3, h, w), device=self.device)
        height, width = image.shape[:2]
        pixels = np.array([crop_box(box, width, height) for box in boxes.tolist()], np.int64)
        if self.crop_method == "cv2":
            stack = np.stack([resize(image[y1:y2, x1:x2], (h, w)) for x1, y1, x2, y2 in pixels])
            body = upload(stack, self.device).permute(0, 3, 1, 2).float()
        else:
            body = self._roi_align(image, pixels, (h, w))
        return (body.flip(1) - self._mean) * self._inv_std  # flip: BGR → RGB

    def _roi_align(self, image: np.ndarray, pixels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        from torchvision.ops import roi_align

        x0, y0 = pixels[:, :2].min(0)
        x1, y1 = pixels[:, 2:].max(0)  # upload only the region that holds the persons
        region = upload(np.ascontiguousarray(image[y0:y1, x0:x1]), self.device).permute(2, 0, 1)[None].float()
        rois = np.zeros((len(pixels), 5), np.float32)  # column 0: the image index, all 0
        rois[:, 1:] = pixels - np.array([x0, y0, x0, y0])
        return roi_align(
            region, upload(rois, self.device), output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True
        )


def upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """`array` as a tensor on `device`: on a CPU the array itself (shared, no copy); to a GPU through a pinned copy,
    without blocking. That copy is torch's, not `array` (which the caller may overwrite at once), and torch's caching
    host allocator hands its memory out again only after the upload has run on its stream."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
