"""Drawing a frame's results: per person a box, the track id, the categories above their thresholds and a bar of
the three modality weights (body, place, scene gist); a legend for the bar colours in the corner.

Labels never cover one another (`label_rects`): persons close together (a queue, a table) have labels wider than
their boxes, so each label takes the first free place among above its box, inside its top, below it, then further
down, as label annotators that avoid each other do. Drawn on a copy: the decoded frame stays as it was for whoever
else holds it.
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
LEGEND_PAD = 4


def above_threshold(scores: np.ndarray, card: ModelCard) -> list[int]:
    """Indices of the categories whose score reaches the card's threshold, highest score first."""
    hits = np.flatnonzero(scores >= np.asarray(card.thresholds, np.float32))
    return sorted(hits.tolist(), key=lambda i: -float(scores[i]))


def draw(image: np.ndarray, persons: Persons, card: ModelCard) -> np.ndarray:
    """An annotated copy of a BGR frame."""
    out = image.copy()
    scale, thick = _font(out.shape[0])
    _legend(out, scale, thick)
    labels = [_text(persons, i, card) for i in range(len(persons))]
    for i in range(len(persons)):  # boxes and bars first: every label is drawn over them
        x1, y1, x2, y2 = (int(round(v)) for v in persons.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), _track_color(int(persons.ids[i])), thick)
        if persons.has_outputs:
            _weights_bar(out, persons.modality_weights[i], (x1, y2), max(x2 - x1, 40), thick)
    for i, (x, y, _, _) in enumerate(label_rects(persons, labels, out.shape[:2])):
        _label(out, labels[i], (x, y), scale, _track_color(int(persons.ids[i])), thick)
    return out


def label_rects(persons: Persons, labels: list[str], shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Where each person's label goes, (x1, y1, x2, y2) in a frame of `shape` (height, width): no two intersect
    while the frame has room (see the module docstring); persons higher in the frame are placed first."""
    height, width = shape
    scale, thick = _font(height)
    legend = _legend_rect(width, height, scale, thick)
    placed: dict[int, tuple[int, int, int, int]] = {-1: legend}  # the colour legend is never covered either
    for i in sorted(range(len(persons)), key=lambda k: (float(persons.boxes[k][1]), k)):
        (text_w, text_h), base = cv2.getTextSize(labels[i], FONT, scale, thick)
        w, h = text_w + 8, text_h + base + 6
        x1, y1, _, y2 = (int(round(v)) for v in persons.boxes[i])
        x = max(0, min(x1, width - w))
        bar = 4 * thick + 3
        candidates = [y1 - h, y1, y2 + bar, *range(y2 + bar + h, height - h + 1, h), *range(y1 - 2 * h, -1, -h)]
        spots = [y for y in candidates if 0 <= y <= height - h] or [max(0, min(y1, height - h))]
        free = (y for y in spots if not any(_overlap((x, y, x + w, y + h), r) for r in placed.values()))
        y = next(free, spots[0])
        placed[i] = (x, y, x + w, y + h)
    return [placed[i] for i in range(len(persons))]  # (the legend, key -1, is not a person's)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _font(height: int) -> tuple[float, int]:
    """Text scale and stroke for a frame of this height: legible at 640x480 and at 4K."""
    return max(0.4, height / 960), max(1, round(height / 480))


def _text(persons: Persons, i: int, card: ModelCard) -> str:
    """A person's label: track id, then the categories above their thresholds (the first MAX_LABELS and a count)."""
    label = f"#{persons.ids[i]}"
    if persons.has_outputs:
        names = [card.categories[j] for j in above_threshold(persons.scores[i], card)]
        extra = f" +{len(names) - MAX_LABELS}" if len(names) > MAX_LABELS else ""
        label += " " + ", ".join(names[:MAX_LABELS]) + extra if names else ""
    return label


def _weights_bar(image: np.ndarray, weights: np.ndarray, origin: tuple[int, int], width: int, thick: int) -> None:
    """A horizontal bar under the box, split in proportion to the modality weights."""
    x, y = origin
    bar = 4 * thick
    y = min(y + 2, image.shape[0] - bar - 1)
    for branch, weight in zip(BRANCHES, weights.tolist()):
        span = int(round(width * max(weight, 0.0)))
        cv2.rectangle(image, (x, y), (x + span, y + bar), BRANCH_COLORS[branch], -1)
        x += span


def _legend_rect(width: int, height: int, scale: float, thick: int) -> tuple[int, int, int, int]:
    """Where the colour legend goes: the bottom right corner."""
    sizes = [cv2.getTextSize(b, FONT, scale, thick) for b in BRANCHES]
    x = width - sum(w + 2 * LEGEND_PAD for (w, _), _ in sizes)
    y = height - max(h for (_, h), _ in sizes) - 3 * LEGEND_PAD
    return x, y, width, height


def _legend(image: np.ndarray, scale: float, thick: int) -> None:
    """The bar colours in the bottom right corner; drawn first, so persons' labels stay on top."""
    sizes = [cv2.getTextSize(b, FONT, scale, thick)[0] for b in BRANCHES]
    pad = LEGEND_PAD
    x, y, _, _ = _legend_rect(image.shape[1], image.shape[0], scale, thick)
    for branch, (w, _) in zip(BRANCHES, sizes):
        _label(image, branch, (x, y), scale, BRANCH_COLORS[branch], thick)
        x += w + 2 * pad


def _label(
    image: np.ndarray, text: str, corner: tuple[int, int], scale: float, color: tuple[int, int, int], thick: int
) -> None:
    """Black text on a filled box of `color` whose top left corner is `corner`: readable on any background."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, thick)
    x, y = corner
    cv2.rectangle(image, (x, y), (x + w + 7, y + h + base + 5), color, -1)  # the pixels of `label_rects`
    cv2.putText(image, text, (x + 4, y + h + 3), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)


def _track_color(track: int) -> tuple[int, int, int]:
    """A bright colour that stays the same for a track id throughout the video."""
    hue = (track * 47) % 180
    b, g, r = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0].tolist()
    return int(b), int(g), int(r)
