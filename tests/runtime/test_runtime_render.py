"""Labels of persons close together never cover one another, and stay in the frame: a queue of figures side by side
whose labels are wider than their boxes, at 640×480 and at 320×240. With EMOEDGE_DOCS=1 the drawn frame is written to
docs/labels-crowded.png (the README's)."""

from __future__ import annotations

import itertools
import os

import cv2
import numpy as np
import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]
from runtime.runtime_media import tiny_card  # type: ignore[import-not-found]

from emoedge.bench.clip import moving_boxes, write_clip
from emoedge.runtime.persons import Persons
from emoedge.runtime.render import _font, _legend_rect, _text, draw, label_rects

CARD = tiny_card(vad=False)


def _crowd(count: int, size: tuple[int, int], frame: int) -> Persons:
    """`count` figures side by side (`moving_boxes`), each with several categories above threshold: long labels."""
    boxes = moving_boxes(frame + 1, count, size)[frame]
    rng = np.random.default_rng(count)
    scores = rng.uniform(0.55, 1.0, (count, 26)).astype(np.float32)
    weights = rng.dirichlet(np.ones(3), count).astype(np.float32)
    persons = Persons.from_arrays(boxes, np.arange(10, 10 + count))
    return persons.with_outputs(scores, weights, None, np.ones(count, bool))


@pytest.mark.parametrize(("count", "size"), [(4, (640, 480)), (6, (640, 480)), (5, (320, 240))])
@pytest.mark.parametrize("frame", [0, 17, 40])
def test_labels_never_overlap(count: int, size: tuple[int, int], frame: int) -> None:
    persons = _crowd(count, size, frame)
    labels = [_text(persons, i, CARD) for i in range(count)]
    rects = label_rects(persons, labels, (size[1], size[0]))
    legend = _legend_rect(size[0], size[1], *_font(size[1]))
    for (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) in itertools.combinations([*rects, legend], 2):
        assert not (ax1 < bx2 and bx1 < ax2 and ay1 < by2 and by1 < ay2), rects
    for x1, y1, x2, y2 in rects:
        assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1], rects


def test_a_drawn_crowd_shows_each_label_whole(tmp_path) -> None:
    """Each label's box is filled with its track's colour where `label_rects` says, none painted over."""
    size = (640, 480)
    write_clip(tmp_path / "c.mp4", 1, 5, size)
    image = cv2.VideoCapture(str(tmp_path / "c.mp4")).read()[1]
    persons = _crowd(5, size, 0)
    drawn = draw(image, persons, CARD)
    labels = [_text(persons, i, CARD) for i in range(len(persons))]
    for (_, y1, x2, _), label in zip(label_rects(persons, labels, image.shape[:2]), labels):
        corner = drawn[y1 + 1, x2 - 2]  # the label's own fill colour at its right edge, where no text is
        assert corner.tolist() != [0, 0, 0] and len(label) > 10
    if os.environ.get("EMOEDGE_DOCS") == "1":
        cv2.imwrite(str(REPO / "docs" / "labels-crowded.png"), drawn)
