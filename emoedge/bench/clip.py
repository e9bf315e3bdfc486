"""A clip to measure with when the user gives none: figures walking across a textured scene, with its boxes file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from emoedge.fileio import atomic_write_text

FRAMES = 40


def make_clip(
    out: Path, size: tuple[int, int], persons: int, *, frames: int = FRAMES, seed: int | None = None
) -> tuple[Path, Path]:
    """(mp4v clip, boxes JSON with ids) of `persons` figures walking across a `size` (width, height) scene."""
    width, height = size
    rng = np.random.default_rng(persons if seed is None else seed)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    box_w, box_h = width // (persons + 2), int(height * 0.7)
    video = out / f"clip_{width}x{height}_{persons}.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, size)
    entries = []
    for t in range(frames):
        image, boxes = scene.copy(), []
        for p in range(persons):
            x1 = int(box_w * (p + 0.5) + 2 * t) % (width - box_w)
            y1 = (height - box_h) // 2 + (p % 3) * 4
            cv2.rectangle(image, (x1, y1), (x1 + box_w - 1, y1 + box_h - 1), (40 + 50 * p % 200, 90, 200), -1)
            boxes.append([x1, y1, x1 + box_w, y1 + box_h])
        writer.write(image)
        entries.append({"index": t, "boxes": boxes, "ids": list(range(1, persons + 1))})
    writer.release()
    boxes_file = atomic_write_text(out / f"clip_{width}x{height}_{persons}.json", json.dumps({"frames": entries}))
    return video, boxes_file
