"""Synthetic clips to measure and test with: coloured figures moving over a textured scene, with their boxes.

The figures stand side by side and never overlap; each glides right and back (2 px a frame) and bobs, so a tracker
can follow every one of them. `emoedge bench` measures on such a clip when the user gives none, the benchmark
scripts measure on them, and the tests run the pipeline on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from emoedge.fileio import atomic_write_text

FRAMES = 40
COLORS = ((40, 40, 230), (230, 160, 30), (60, 200, 60))  # BGR, one per figure in turn

Boxes = list[list[list[float]]]  # per frame, per figure: [x1, y1, x2, y2]


def moving_boxes(frames: int, persons: int, size: tuple[int, int]) -> Boxes:
    """Per frame, `persons` boxes gliding right and back (2 px a frame) and bobbing, side by side, never overlapping,
    in a `size` (width, height) frame."""
    width, height = size
    box_w, box_h = width // (2 * persons + 1), height // 2
    out = []
    for t in range(frames):
        dx, dy = _triangle(2 * t, box_w - 1), _triangle(t, height // 8)
        out.append(
            [
                [float(x), float(y), float(x + box_w), float(y + box_h)]
                for p in range(persons)
                for x, y in [(box_w // 2 + p * 2 * box_w + dx, height // 8 + dy)]
            ]
        )
    return out


def _triangle(t: int, top: int) -> int:
    """0, 1, …, top, top - 1, …, 0, 1, …: a position that moves smoothly back and forth."""
    return abs(t % (2 * top) - top) if top > 0 else 0


def write_clip(
    path: Path, frames: int, persons: int, size: tuple[int, int] = (160, 120), *, fps: float = 25.0, seed: int = 0
) -> Boxes:
    """An mp4v clip of `persons` coloured figures (`moving_boxes`) over a textured background (seeded); returns the
    boxes of every frame."""
    boxes = moving_boxes(frames, persons, size)
    width, height = size
    background = np.random.default_rng(seed).integers(60, 120, (height, width, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write an mp4v video to {path}")
    try:
        for frame_boxes in boxes:
            image = background.copy()
            for p, (x1, y1, x2, y2) in enumerate(frame_boxes):
                cv2.rectangle(image, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), COLORS[p % len(COLORS)], -1)
            writer.write(image)
    finally:
        writer.release()
    return boxes


def write_boxes_json(path: Path, boxes: Boxes, ids: bool = True) -> Path:
    """The boxes file `emoedge run --boxes` reads: per frame its index, boxes and (with `ids`) the figures' ids,
    10, 11, …"""
    frames = []
    for index, frame_boxes in enumerate(boxes):
        entry: dict = {"index": index, "boxes": frame_boxes}
        if ids:
            entry["ids"] = [10 + p for p in range(len(frame_boxes))]
        frames.append(entry)
    return atomic_write_text(path, json.dumps({"frames": frames}))


def make_clip(
    out: Path, size: tuple[int, int], persons: int, *, frames: int = FRAMES, seed: int = 0
) -> tuple[Path, Path]:
    """(clip, boxes file with ids) of `persons` figures in a `size` (width, height) scene, named by size and persons
    in the folder `out`."""
    stem = out / f"clip_{size[0]}x{size[1]}_{persons}"
    boxes = write_clip(stem.with_suffix(".mp4"), frames, persons, size, seed=seed)
    return stem.with_suffix(".mp4"), write_boxes_json(stem.with_suffix(".json"), boxes)
