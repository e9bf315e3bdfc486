"""Where results go: an annotated MP4, a JSON Lines event log, a live window.

Why each is a context manager that closes in `finally`: an interrupted run must still leave a playable video (the
MP4 index is written by `release`) and a log whose every line is whole — each line is written in one call and
flushed at once, so a crash can lose at most the line being built, never leave half of one in the file.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, TextIO, TypeVar

import cv2
import numpy as np

from emoedge.card import ModelCard
from emoedge.categories import BRANCHES, VAD_NAMES
from emoedge.errors import EmoedgeError
from emoedge.runtime.persons import Persons
from emoedge.runtime.render import above_threshold

S = TypeVar("S", bound="_Closes")
DIGITS = 4  # decimals kept for scores and weights in the log: well below any threshold's meaning


class _Closes(ABC):
    """A sink as a context manager: leaving the `with` block closes it, whatever happened."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoSink(_Closes):
    """An MP4 (mp4v) of fixed size and rate; a frame of another size (an image folder of mixed sizes) is scaled to
    fit and padded with black (letterbox), never stretched."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size)
        if not self._writer.isOpened():
            self._writer.release()
            raise EmoedgeError(f"output video {self.path}: OpenCV cannot write it (expected a writable .mp4 path)")

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = letterbox(image, self.size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        self._writer.release()


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` scaled to fit `size` (width, height) with its aspect ratio kept, centred on black."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    out[top : top + h, left : left + w] = resized
    return out


class EventLog(_Closes):
    """JSON Lines: one "person" record per person and processed frame, then one "summary" record."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file: TextIO = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 — closed in close()
        except OSError as exc:
            raise EmoedgeError(f"events file {self.path}: cannot write it ({exc.strerror})") from None

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        self.records += 1

    def close(self) -> None:
        self._file.close()


def person_record(index: int, timestamp: float, persons: Persons, i: int, card: ModelCard) -> dict[str, Any]:
    """The event of person `i`: time, frame, track id, box, scores, categories above threshold, weights, VAD."""
    scores = persons.scores[i]
    record: dict[str, Any] = {
        "type": "person",
        "time": round(float(timestamp), 3),
        "frame": int(index),
        "track_id": int(persons.ids[i]),
        "box": [round(float(v), 1) for v in persons.boxes[i]],
        "confidence": round(float(persons.confidences[i]), DIGITS),
        "inferred": bool(persons.inferred[i]),
        "scores": {name: round(float(s), DIGITS) for name, s in zip(card.categories, scores.tolist())},
        "categories": [card.categories[j] for j in above_threshold(scores, card)],
        "modality_weights": {b: round(float(w), DIGITS) for b, w in zip(BRANCHES, persons.modality_weights[i])},
    }
    if persons.vad is not None:
        record["vad"] = {name: round(float(v), 3) for name, v in zip(VAD_NAMES, persons.vad[i])}
    return record


class Window(_Closes):
    """A live OpenCV window (one per stream, titled with its id); `show` returns False once the user presses q or
    Esc in it."""

    def __init__(self, title: str = "emoedge") -> None:
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise EmoedgeError(
                "--show needs OpenCV with GUI support and a display (opencv-python, not opencv-python-headless)"
            ) from None

    def show(self, image: np.ndarray) -> bool:
        cv2.imshow(self.title, image)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(self.title)
