"""`Persons`: the persons of one frame as parallel numpy arrays, the one record every runtime stage passes on.

Why parallel arrays rather than a list of person objects: the detector yields arrays, the engine takes one batch,
and smoothing, rendering and the event log index rows — no stage loops over Python objects to build another.
Arrays are validated once, here, so a stage never receives a box array and an id array of different lengths.
Stages return new `Persons` (`with_outputs`, `take`); none writes into the arrays it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from emoedge.categories import BRANCHES, NUM_CATEGORIES


@dataclass(frozen=True, eq=False)
class Persons:
    """N persons: `boxes` [N,4] x1,y1,x2,y2 pixels, `ids` [N] track ids, `confidences` [N]; after the engine also
    `scores` [N,26], `modality_weights` [N,3] (body, place, scene gist), `vad` [N,3] if the model has it, and
    `inferred` [N] (True where this frame ran the engine for that person, False where a recent result was reused).
    """

    boxes: np.ndarray
    ids: np.ndarray
    confidences: np.ndarray
    scores: np.ndarray | None = None
    modality_weights: np.ndarray | None = None
    vad: np.ndarray | None = None
    inferred: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = _check("boxes", self.boxes, np.float32, (None, 4))
        _check("ids", self.ids, np.int64, (n,))
        _check("confidences", self.confidences, np.float32, (n,))
        if len(np.unique(self.ids)) != n:
            raise ValueError(f"Persons: track ids {self.ids.tolist()} are not unique within the frame")
        outputs = {"scores": (n, NUM_CATEGORIES), "modality_weights": (n, len(BRANCHES)), "vad": (n, 3)}
        for name, shape in outputs.items():
            if getattr(self, name) is not None:
                _check(name, getattr(self, name), np.float32, shape)
        if (self.scores is None) != (self.modality_weights is None) or (self.vad is not None and self.scores is None):
            raise ValueError("Persons: scores and modality_weights come together (and vad only with them)")
        if self.inferred is not None:
            _check("inferred", self.inferred, np.bool_, (n,))

    @classmethod
    def empty(cls) -> Persons:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @classmethod
    def from_arrays(cls, boxes: object, ids: object, confidences: object | None = None) -> Persons:
        """Persons from array-likes of any numeric type (detector outputs, lists); confidences default to 1."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        conf = np.ones(len(boxes), np.float32) if confidences is None else np.asarray(confidences, np.float32)
        return cls(boxes, np.asarray(ids, np.int64).reshape(-1), conf.reshape(-1))

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def has_outputs(self) -> bool:
        return self.scores is not None

    def with_outputs(
        self, scores: np.ndarray, modality_weights: np.ndarray, vad: np.ndarray | None, inferred: np.ndarray
    ) -> Persons:
        """A copy carrying the model's outputs for every person (rows in the order of `ids`)."""
        return replace(self, scores=scores, modality_weights=modality_weights, vad=vad, inferred=inferred)

    def take(self, mask: np.ndarray) -> Persons:
        """The persons where `mask` is True (a boolean mask or integer indices), every array indexed alike."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[mask]

        return Persons(
            self.boxes[mask], self.ids[mask], self.confidences[mask], pick(self.scores),
            pick(self.modality_weights), pick(self.vad), pick(self.inferred),
        )  # fmt: skip

    def __repr__(self) -> str:
        stage = "with outputs" if self.has_outputs else "boxes only"
        return f"Persons(n={len(self)}, ids={self.ids.tolist()}, {stage})"


def _check(name: str, array: object, dtype: type, shape: tuple[int | None, ...]) -> int:
    """Length of `array`, a numpy array of `dtype` and `shape` (None: any), else ValueError naming it."""
    if not isinstance(array, np.ndarray) or array.dtype != dtype:
        found = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"Persons.{name}: expected a numpy {np.dtype(dtype)} array, got {found}")
    if array.ndim != len(shape) or any(s is not None and a != s for a, s in zip(array.shape, shape)):
        want = "×".join("N" if s is None else str(s) for s in shape)
        raise ValueError(f"Persons.{name}: shape {list(array.shape)}, expected {want}")
    return int(array.shape[0])
