"""A stream's tracker: boxes found in its frames → `Persons` with ids that persist, and the frames between detections.

Why Ultralytics' ByteTrack: Kalman prediction + two-stage IoU matching is what `model.track` runs and what its users
know; re-implementing it would be a second, untested tracker. Boxes from a file without ids go through the same
ByteTrack, so ids mean the same thing on both paths; a file's own ids are kept as given.

With `detect_every` K the finder is asked on every K-th frame only (`due`) and the tracker "coasts" through the
frames between (DeepStream's `interval`): ByteTrack steps with no detections, so its Kalman filter predicts every
track one frame on (the tracks turn "lost", and the next detections find them again, ids kept, as they find a
briefly hidden person), and the tracks confirmed at the last detection are given at their predicted boxes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from emoedge.errors import EmoedgeError
from emoedge.runtime.finders import PERSON, Found
from emoedge.runtime.persons import Persons
from emoedge.runtime.yolo import INSTALL_HINT, import_ultralytics

TRACKER = "bytetrack.yaml"


class Tracker:
    """One stream's tracks. Ids are numbered 1, 2, ... in the order tracks are first confirmed, from `ids` when
    given: the trackers of a run share one counter, so no two streams' persons ever carry the same id.
    `gives_ids`: the finder's boxes carry their own ids, which are kept (no ByteTrack, every frame asked)."""

    def __init__(self, detect_every: int = 1, ids: Iterator[int] | None = None, *, gives_ids: bool = False) -> None:
        self.detect_every = 1 if gives_ids else detect_every
        self._byte = None if gives_ids else _bytetrack()
        self._frames = 0
        self._detected_at = 0  # ByteTrack's frame id at the last detection
        self._ids = itertools.count(1) if ids is None else ids
        self._given: dict[int, int] = {}  # ByteTrack's id → the id emoedge gives

    def due(self) -> bool:
        """Whether the next frame needs the finder: the first, then every `detect_every`-th."""
        return self._frames % self.detect_every == 0

    def __call__(self, found: Found | None, shape: tuple[int, int]) -> Persons:
        """The next frame's persons: from `found` (its boxes) when it was due, else carried by the tracker (None)."""
        self._frames += 1
        if self._byte is None:
            assert found is not None and found.ids is not None, "a finder that gives ids is asked on every frame"
            return Persons(found.boxes.astype(np.float32), found.ids.astype(np.int64), found.confidences)
        if found is None:
            return self._coast(shape)
        data = np.concatenate([found.boxes, found.confidences[:, None], np.full((len(found.boxes), 1), PERSON)], 1)
        tracks = self._step(data, shape)
        self._detected_at = self._byte.frame_id
        if len(tracks) == 0:
            return Persons.empty()
        index = tracks[:, -1].astype(np.int64)  # the detection each track matched: keep the given box, not Kalman's
        boxes, confidences = found.boxes[index].astype(np.float32), found.confidences[index].astype(np.float32)
        return Persons(boxes, self._numbered(tracks[:, 4]), confidences)

    def _coast(self, shape: tuple[int, int]) -> Persons:
        """A frame without boxes: the tracks confirmed at the last detection, at their predicted boxes."""
        self._step(np.zeros((0, 6)), shape)
        carried = [t for t in self._byte.lost_stracks if t.frame_id == self._detected_at and t.is_activated]
        if not carried:
            return Persons.empty()
        height, width = shape
        boxes = np.array([t.xyxy for t in carried], np.float32)
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # a track predicted out of the frame: gone
        ids = self._numbered(np.array([t.track_id for t in carried])[keep])
        return Persons(boxes[keep], ids, np.array([t.score for t in carried], np.float32)[keep])

    def _numbered(self, tracker_ids: np.ndarray) -> np.ndarray:
        """The ids emoedge gives for ByteTrack's (new ones take the next number of the shared counter)."""
        return np.array([self._given.setdefault(int(t), next(self._ids)) for t in tracker_ids], np.int64)

    def _step(self, data: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        from ultralytics.engine.results import Boxes

        return self._byte.update(Boxes(data.astype(np.float32), shape), None)


def _bytetrack() -> Any:  # Ultralytics' BYTETracker, imported lazily
    """Ultralytics' ByteTrack with its shipped settings; one line where Ultralytics is not installed."""
    try:
        import_ultralytics()
    except EmoedgeError:
        raise EmoedgeError(
            f"tracking needs Ultralytics' ByteTrack, which is not installed ({INSTALL_HINT}); a boxes file with "
            "track ids ('ids' in JSON, an 'id' column in CSV) needs no tracker"
        ) from None
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    return BYTETracker(IterableSimpleNamespace(**YAML.load(check_yaml(TRACKER))))
