"""The one record type every EMOTIC reader produces: one annotated person in one image.

Why a single type: the official `.mat` release and the widely used preprocessed CSVs describe the same
persons; both readers turn them into `PersonRecord`s that compare equal, so nothing downstream cares which
file the labels came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from emoedge.categories import CATEGORY_INDEX, NUM_CATEGORIES


def canonical_categories(names: Iterable[str]) -> tuple[str, ...]:
    """Deduplicate `names` and sort them in the official CATEGORIES order; ValueError names an unknown one."""
    unique = set()
    for name in names:
        name = str(name).strip()
        if name not in CATEGORY_INDEX:
            raise ValueError(f"unknown category {name!r}")
        unique.add(name)
    return tuple(sorted(unique, key=CATEGORY_INDEX.__getitem__))


def clip_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[tuple[float, float, float, float], bool]:
    """Clip an `x1, y1, x2, y2` pixel box to a `width` x `height` image; also say whether it changed."""
    x1, y1, x2, y2 = (float(v) for v in box)
    clipped = (
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
        min(max(x2, 0.0), float(width)),
        min(max(y2, 0.0), float(height)),
    )
    return clipped, clipped != (x1, y1, x2, y2)


def box_problem(box: tuple[float, ...], width: int, height: int) -> str | None:
    """What makes an `x1, y1, x2, y2` box unusable in a `width` x `height` image, or None.

    Not finite, inverted (x2 <= x1 or y2 <= y1: never swapped silently, the annotation is wrong) or wholly outside
    the image (nothing left after clipping, where a crop would be one made-up pixel).
    """
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box):
        return "is not finite"
    for low, high, axis in ((x1, x2, "x"), (y1, y2, "y")):
        if high <= low:
            return f"has {axis}2 <= {axis}1 (expected [x1, y1, x2, y2] with x2 > x1 and y2 > y1)"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return f"lies outside the {width}x{height} image"
    return None


def vad_usable(vad: tuple[float, ...]) -> bool:
    """Three finite numbers: a NaN (or an infinity) would turn the VAD loss and its metrics into NaN."""
    return len(vad) == 3 and all(math.isfinite(v) for v in vad)


@dataclass(frozen=True)
class PersonRecord:
    """One labelled person; `bbox` is clipped to the image and usable, `categories` canonical, `vad` finite.

    The checks make the invariant structural: no reader can hand the training loader a box `box_problem` rejects.
    """

    folder: str  # e.g. "mscoco/images", relative to <root>/emotic
    filename: str
    image_size: tuple[int, int]  # (width, height) = (n_col, n_row)
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    categories: tuple[str, ...]  # official CATEGORIES order, non-empty
    vad: tuple[float, float, float]  # valence, arousal, dominance on 1..10
    gender: str = ""
    age: str = ""

    def __post_init__(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"{self.filename}: image_size {self.image_size}: expected (width, height) > 0")
        if len(self.bbox) != 4:
            raise ValueError(f"{self.filename}: bbox {self.bbox}: expected 4 values")
        problem = box_problem(self.bbox, *self.image_size)
        if problem is not None:
            raise ValueError(f"{self.filename}: bbox {self.bbox} {problem}")
        if not self.categories or canonical_categories(self.categories) != tuple(self.categories):
            raise ValueError(f"{self.filename}: categories {self.categories}: expected a non-empty canonical tuple")
        if not vad_usable(self.vad):
            raise ValueError(f"{self.filename}: vad {self.vad}: expected 3 finite numbers")

    def multi_hot(self) -> np.ndarray:
        """Float32 vector of length 26 with ones at this person's categories."""
        out = np.zeros(NUM_CATEGORIES, dtype=np.float32)
        out[[CATEGORY_INDEX[c] for c in self.categories]] = 1.0
        return out


@dataclass(frozen=True)
class SplitData:
    """The usable persons of one split, plus what was dropped or repaired on the way."""

    split: str
    records: list[PersonRecord] = field(default_factory=list)
    skipped: int = 0  # persons without category or with a NaN/infinite VAD
    clipped: int = 0  # boxes that had to be clipped to the image
    bad_boxes: tuple[str, ...] = ()  # persons skipped for an unusable box: "where: box [...] what is wrong"
