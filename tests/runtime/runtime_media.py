"""Test media for the runtime: a tiny emotion-model checkpoint (`emoedge.bench.models.random_checkpoint`) and a
synthetic clip of moving persons with its boxes.

Imported by the runtime tests as `runtime.runtime_media` (tests/ is on the path).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from emoedge.bench.models import random_checkpoint

PERSON_COLORS = ((40, 40, 230), (230, 160, 30), (60, 200, 60))  # BGR


def write_tiny_checkpoint(path: Path, *, vad: bool = True, seed: int = 0) -> Path:
    """The sample recipe's model (tiny backbones, 96/64 px inputs) with random weights: `random_checkpoint`."""
    return random_checkpoint(path, "sample", seed=seed, vad=vad)


def moving_boxes(frames: int, persons: int, size: tuple[int, int]) -> list[list[list[float]]]:
    """Per frame, `persons` boxes gliding right and back (2 px a frame) and bobbing, side by side, never overlapping."""
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


def write_clip(path: Path, frames: int, persons: int, size: tuple[int, int] = (160, 120), fps: float = 25.0) -> list:
    """An mp4v clip of coloured persons moving over a textured background; returns the boxes of every frame."""
    boxes = moving_boxes(frames, persons, size)
    width, height = size
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame_boxes in boxes:
        image = background.copy()
        for p, (x1, y1, x2, y2) in enumerate(frame_boxes):
            cv2.rectangle(image, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), PERSON_COLORS[p % 3], -1)
        writer.write(image)
    writer.release()
    return boxes


def write_boxes_json(path: Path, boxes: list, ids: bool = True) -> Path:
    frames = []
    for index, frame_boxes in enumerate(boxes):
        entry: dict = {"index": index, "boxes": frame_boxes}
        if ids:
            entry["ids"] = [10 + p for p in range(len(frame_boxes))]
        frames.append(entry)
    path.write_text(json.dumps({"frames": frames}))
    return path


def read_events(path: Path) -> tuple[list[dict], dict]:
    """(person records, summary record) of an event log; every line must be whole JSON."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    persons = [r for r in records if r["type"] == "person"]
    summaries = [r for r in records if r["type"] == "summary"]
    assert len(summaries) == 1 and records[-1]["type"] == "summary"
    return persons, summaries[0]


def video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames OpenCV decodes, (width, height)) of a video file."""
    capture = cv2.VideoCapture(str(path))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count, size
