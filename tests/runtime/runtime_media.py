"""Readers of what a run writes (the event log, the video), and the tiny model card, for the runtime tests.

The makers of test media live in the package (`emoedge.bench.models.random_checkpoint`, `emoedge.bench.clip`) and
are imported from there; the names below stay for test_runtime_pipeline.py, which imports them from here.

Imported by the runtime tests as `runtime.runtime_media` (tests/ is on the path).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from emoedge.bench.clip import write_boxes_json, write_clip
from emoedge.bench.models import random_checkpoint
from emoedge.card import ModelCard

__all__ = ["read_events", "tiny_card", "video_frames", "write_boxes_json", "write_clip", "write_tiny_checkpoint"]


def tiny_card(**changes: object) -> ModelCard:
    """The card of a model with tiny backbones at 96/64 px, every threshold 0.5; `changes` replace fields."""
    fields: dict = {
        "name": "t", "branches": ("body", "place", "scene"),
        "backbones": {"body": "tiny", "place": "tiny", "scene": "tiny"}, "fusion": "attention",
        "image_size": (96, 96), "body_size": (64, 64), "vad": True, "thresholds": (0.5,) * 26,
    }  # fmt: skip
    return ModelCard(**{**fields, **changes})


def write_tiny_checkpoint(path: Path, *, vad: bool = True, seed: int = 0) -> Path:
    """The sample recipe's model (tiny backbones, 96/64 px inputs) with random weights: `random_checkpoint`."""
    return random_checkpoint(path, "sample", seed=seed, vad=vad)


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
