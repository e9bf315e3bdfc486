"""Drawing a frame's results: per person a box, the track id, the categories above their thresholds and a bar of
the three modality weights (body, place, scene gist); a legend for the bar colours in the corner.

Drawn on a copy: the decoded frame stays as it was for whoever else holds it.
"""

from __future__ import annotations

import cv2
import numpy as np

from emoedge.card import ModelCard
from emoedge.categories import BRANCHES
from emoedge.runtime.persons import Persons

BRANCH_COLORS = {"body": (0, 140, 255), "place": (80, 200, 60), "scene": (230, 120, 40)}  # BGR: orange, green, blue
MAX_LABELS = 3  # categories written per person, highest score first
FONT = cv2.FONT_HERSHEY_SIMPLEX


def above_threshold(scores: np.ndarray, card: ModelCard) -> list[int]:
    """Indices of the categories whose score reaches the card's threshold, highest score first."""
    hits = np.flatnonzero(scores >= np.asarray(card.thresholds, np.float32))
    return sorted(hits.tolist(), key=lambda i: -float(scores[i]))


def draw(image: np.ndarray, persons: Persons, card: ModelCard) -> np.ndarray:
    """An annotated copy of a BGR frame."""
    out = image.copy()
    height = out.shape[0]
    scale = max(0.4, height / 960)
    thick = max(1, round(height / 480))
    _legend(out, scale, thick)
    for i in range(len(persons)):
        x1, y1, x2, y2 = (int(round(v)) for v in persons.boxes[i])
        color = _track_color(int(persons.ids[i]))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        label = f"#{persons.ids[i]}"
        if persons.has_outputs:
            names = [card.categories[j] for j in above_threshold(persons.scores[i], card)]
            extra = f" +{len(names) - MAX_LABELS}" if len(names) > MAX_LABELS else ""
            label += " " + ", ".join(names[:MAX_LABELS]) + extra if names else ""
            _weights_bar(out, persons.modality_weights[i], (x1, y2), max(x2 - x1, 40), thick)
        (text_w, text_h), base = cv2.getTextSize(label, FONT, scale, thick)
        box_h = text_h + base + 6
        corner = (max(0, min(x1, out.shape[1] - text_w - 8)), y1 - box_h if y1 >= box_h else y1)
        _label(out, label, corner, scale, color, thick)
    return out


def _weights_bar(image: np.ndarray, weights: np.ndarray, origin: tuple[int, int], width: int, thick: int) -> None:
    """A horizontal bar under the box, split in proportion to the modality weights."""
    x, y = origin
    bar = 4 * thick
    y = min(y + 2, image.shape[0] - bar - 1)
    for branch, weight in zip(BRANCHES, weights.tolist()):
        span = int(round(width * max(weight, 0.0)))
        cv2.rectangle(image, (x, y), (x + span, y + bar), BRANCH_COLORS[branch], -1)
        x += span


def _legend(image: np.ndarray, scale: float, thick: int) -> None:
    """The bar colours in the bottom right corner; drawn first, so persons' labels stay on top."""
    sizes = [cv2.getTextSize(b, FONT, scale, thick)[0] for b in BRANCHES]
    pad = 4
    x = image.shape[1] - sum(w + 2 * pad for w, _ in sizes)
    y = image.shape[0] - max(h for _, h in sizes) - 3 * pad
    for branch, (w, _) in zip(BRANCHES, sizes):
        _label(image, branch, (x, y), scale, BRANCH_COLORS[branch], thick)
        x += w + 2 * pad


def _label(
    image: np.ndarray, text: str, corner: tuple[int, int], scale: float, color: tuple[int, int, int], thick: int
) -> None:
    """Black text on a filled box of `color` whose top left corner is `corner`: readable on any background."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, thick)
    x, y = corner
    cv2.rectangle(image, (x, y), (x + w + 8, y + h + base + 6), color, -1)
    cv2.putText(image, text, (x + 4, y + h + 3), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)


def _track_color(track: int) -> tuple[int, int, int]:
    """A bright colour that stays the same for a track id throughout the video."""
    hue = (track * 47) % 180
    b, g, r = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0].tolist()
    return int(b), int(g), int(r)
