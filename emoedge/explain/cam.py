"""Where each branch looked, as the paper's Figure 1 shows it: Grad-CAM of one category, per branch, and the
modality weights of the fusion.

The score explained is the deployed one (the fused model's sigmoid score for the category), differentiated with
respect to the last feature map of each branch's encoder: the body crop's, and the whole image's for the place and
scene-gist branches. Each map is rectified, upsampled to the input that branch saw and normalised to sum 1, so the
share of a map lying on a region is a fraction of where the branch looked.

Why Captum's `LayerGradCam`: it is PyTorch's own interpretability library (kept by Meta) and needs nothing beyond
torch and matplotlib; `grad-cam` would bring opencv-python (the GUI build) beside the headless OpenCV emoedge uses,
two builds of one `cv2` module in one environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emoedge.card import ModelCard
from emoedge.categories import BRANCHES
from emoedge.data.transforms import PairTransform, crop_box
from emoedge.errors import EmoedgeError
from emoedge.model.backbones import feature_map_layer
from emoedge.model.deploy import DeployModel
from emoedge.model.net import EmotionNet


@dataclass(frozen=True)
class Explanation:
    """One person's explanation: the category explained, every score, the modality weights and one heat map per
    branch (body: over the crop; place, scene: over the whole image), each summing to 1 (all zeros if the branch
    had no positive evidence)."""

    category: str
    scores: dict[str, float]  # by category name, the model card's order
    thresholds: dict[str, float]
    weights: dict[str, float]  # by branch, BRANCHES order; 0 for branches the model lacks
    maps: dict[str, np.ndarray]  # by branch the model has: [h, w] float32
    box: tuple[int, int, int, int]  # the body crop in pixels of the image: x1, y1, x2, y2

    def top(self, k: int = 5) -> list[str]:
        """The `k` highest-scoring categories."""
        return sorted(self.scores, key=self.scores.get, reverse=True)[:k]


def explain_person(
    net: EmotionNet, card: ModelCard, pixels: np.ndarray, box: Any, category: str | None = None
) -> Explanation:
    """Explain the person in `box` (x1, y1, x2, y2 pixels) of `pixels` (RGB uint8 [H,W,3]); `category` defaults to
    the person's top-scoring one."""
    height, width = pixels.shape[:2]
    _check_box(box, width, height)
    transform = PairTransform(False, card.image_size, card.body_size, card.mean, card.std)
    image, crop = (t[None] for t in transform(pixels, box))
    deploy = DeployModel(net).eval()
    frame = torch.zeros(1, dtype=torch.int64)
    with torch.no_grad():
        scores, weights = (t[0].numpy() for t in deploy(image, crop, frame)[:2])
    if category is None:
        target = int(np.argmax(scores))
    elif category in card.categories:
        target = card.categories.index(category)
    else:
        raise EmoedgeError(f"category {category!r}: not one of the model's categories ({', '.join(card.categories)})")
    maps = {}
    for branch in card.branches:
        layer = feature_map_layer(net.encoders[branch], card.backbones[branch])
        if branch == "body":
            maps[branch] = _grad_cam(lambda body: deploy(image, body, frame)[0], layer, crop, target)
        else:
            maps[branch] = _grad_cam(lambda whole: deploy(whole, crop, frame)[0], layer, image, target)
    return Explanation(
        category=card.categories[target],
        scores=dict(zip(card.categories, scores.tolist())),
        thresholds=dict(zip(card.categories, card.thresholds)),
        weights=dict(zip(BRANCHES, weights.tolist())),
        maps=maps,
        box=crop_box(box, width, height),
    )


def _check_box(box: Any, width: int, height: int) -> None:
    values = [float(v) for v in box] if len(box) == 4 else []
    ok = len(values) == 4 and all(np.isfinite(values)) and values[2] > values[0] and values[3] > values[1]
    if not ok or values[0] >= width or values[1] >= height or values[2] <= 0 or values[3] <= 0:
        raise EmoedgeError(
            f"box {list(box)}: expected x1,y1,x2,y2 pixels with x2 > x1, y2 > y1, overlapping the {width}x{height} image"
        )


def _grad_cam(forward: Any, layer: torch.nn.Module, inputs: torch.Tensor, target: int) -> np.ndarray:
    """The rectified Grad-CAM of `target` at `layer`, upsampled to `inputs`' size, as shares summing to 1."""
    from captum.attr import LayerAttribution, LayerGradCam  # optional: the `explain` extra

    cam = LayerGradCam(forward, layer).attribute(inputs, target=target, relu_attributions=True)
    heat = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")
    heat = heat[0, 0].detach().clamp_min(0).numpy().astype(np.float32)
    total = float(heat.sum())
    return heat / total if total > 0 else heat
