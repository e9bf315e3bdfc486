"""Per-track state over time: reusing a track's last result for a few frames, and smoothing its scores.

Why per track: a person's emotion changes over seconds, a frame's score jitters frame to frame; smoothing along the
track id removes the jitter without mixing persons. Why reuse: with many persons, re-running the engine on a track
every k-th frame divides the engine work by k, while new tracks are still inferred at once. Both states are owned by
their instance and keyed by track id; a track absent from a frame is forgotten, so state never grows with the video
and a re-used id starts afresh.
"""

from __future__ import annotations

import numpy as np

from emoedge.runtime.persons import Persons

OUTPUTS = ("scores", "modality_weights", "vad")


class ResultCache:
    """`due` says which persons need the engine this frame; `merge` completes a frame with fresh and reused results.

    `every` k: a track is inferred on its first frame and then on every k-th frame (1: every frame).
    """

    def __init__(self, every: int = 1) -> None:
        if int(every) != every or every < 1:
            raise ValueError(f"every {every!r}: expected an integer >= 1")
        self.every = int(every)
        self._last: dict[int, tuple[int, dict[str, np.ndarray | None]]] = {}  # id -> (age in frames, output rows)

    def due(self, persons: Persons) -> np.ndarray:
        """Boolean mask: True for new tracks and for tracks whose result is `every` frames old."""
        return np.array([self._age(int(i)) >= self.every for i in persons.ids], dtype=bool)

    def _age(self, track: int) -> int:
        return self._last[track][0] if track in self._last else self.every

    def merge(self, persons: Persons, due: np.ndarray, outputs: dict[str, np.ndarray]) -> Persons:
        """Persons with outputs for all: the engine `outputs` (rows of the `due` persons, in order), cached rows for
        the others."""
        fresh = {name: outputs.get(name) for name in OUTPUTS}
        rows = iter(range(int(due.sum())))
        merged: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS if fresh[name] is not None}
        last: dict[int, tuple[int, dict[str, np.ndarray | None]]] = {}
        for track, inferred in zip(persons.ids.tolist(), due.tolist()):
            if inferred:
                row = next(rows)
                values = {name: fresh[name][row] for name in merged}
                last[track] = (1, values)
            else:
                age, values = self._last[track]
                last[track] = (age + 1, values)
            for name in merged:
                merged[name].append(values[name])
        self._last = last  # tracks absent from this frame are forgotten
        arrays = {name: _stack(merged[name], fresh[name]) for name in merged}
        return persons.with_outputs(arrays["scores"], arrays["modality_weights"], arrays.get("vad"), due.copy())


class ScoreSmoother:
    """Exponential moving average of every output along each track: s ← α·s + (1 − α)·new, over its inferences.

    `alpha` 0 turns smoothing off. A reused result (not inferred this frame) leaves the average where it is.
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"smoothing {alpha!r}: expected a number in [0, 1)")
        self.alpha = float(alpha)
        self._state: dict[int, dict[str, np.ndarray]] = {}

    def __call__(self, persons: Persons) -> Persons:
        names = [n for n in OUTPUTS if getattr(persons, n) is not None]
        state: dict[int, dict[str, np.ndarray]] = {}
        for i, track in enumerate(persons.ids.tolist()):
            previous = self._state.get(track)
            new = {n: getattr(persons, n)[i] for n in names}
            if previous is None:
                state[track] = new
            elif persons.inferred[i]:
                state[track] = {n: self.alpha * previous[n] + (1.0 - self.alpha) * new[n] for n in names}
            else:
                state[track] = previous
        self._state = state  # tracks absent from this frame are forgotten
        arrays = {n: _stack([state[t][n] for t in persons.ids.tolist()], getattr(persons, n)) for n in names}
        return persons.with_outputs(arrays["scores"], arrays["modality_weights"], arrays.get("vad"), persons.inferred)


def _stack(rows: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    """Rows stacked as float32 [N, C]; an empty frame keeps the column count of `like`."""
    if not rows:
        return np.zeros((0, like.shape[1]), np.float32)
    return np.stack(rows).astype(np.float32, copy=False)
