"""Persons → persons with emotions: crops prepared, ONE engine call for a whole tick, results reused and smoothed.

A tick brings one frame of each stream that has one. Each frame's persons due for inference (new tracks, and tracks
whose result is `every` frames old) are cropped; the engine runs once for all of them — F frames and N persons,
`frame` saying which frame each person is in, so the context branches run once per frame — and each stream's share
of the outputs is merged with its reused results and smoothed along its tracks (`TrackState`, one per stream, so a
stream's results are those of a run of it alone). torch is imported when a Tagger is built, not with this module:
a run's bad input (a missing detector, say) is one line before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emoedge.backends import Backend
from emoedge.runtime.persons import Persons
from emoedge.runtime.smoothing import ResultCache, ScoreSmoother
from emoedge.runtime.sources import Frame
from emoedge.runtime.summary import Timer

if TYPE_CHECKING:
    from emoedge.runtime.preprocess import EngineInputs


class TrackState:
    """One stream's per-track state: which results are reused (`every`) and the smoothed scores (`smooth`)."""

    def __init__(self, every: int, smooth: float) -> None:
        self.cache, self.smoother = ResultCache(every), ScoreSmoother(float(smooth))


@dataclass(frozen=True, eq=False)
class Item:
    """One stream's frame in a tick: its track state, the frame and its persons (boxes and ids)."""

    state: TrackState
    frame: Frame
    persons: Persons


class Tagger:
    """Tags a tick's frames with one engine call; counts `inferences` (persons run) and `engine_calls`."""

    def __init__(self, backend: Backend, timer: Timer) -> None:
        import torch

        from emoedge.runtime.preprocess import Preprocessor

        self.backend, self.timer, self._cat = backend, timer, torch.cat
        self.preprocess = Preprocessor(backend.card, backend.input_device)
        self.inferences = self.engine_calls = 0

    def __call__(self, items: list[Item]) -> list[Persons]:
        """Each item's persons with the model's outputs, in order."""
        dues = [item.state.cache.due(item.persons) for item in items]
        inputs: list[EngineInputs | None] = []
        for item, due in zip(items, dues):
            if not due.any():
                inputs.append(None)
                continue
            with self.timer("preprocess"):
                inputs.append(self.preprocess(item.frame.image, item.persons.boxes[due]))
            self.inferences += int(due.sum())
        shares = self._infer(inputs)
        with self.timer("smooth"):
            return [
                item.state.smoother(item.state.cache.merge(item.persons, due, outputs))
                for item, due, outputs in zip(items, dues, shares)
            ]

    def _infer(self, inputs: list[EngineInputs | None]) -> list[dict[str, np.ndarray]]:
        """ONE engine call for the due persons of every frame; each frame's share of the outputs."""
        shares = [self.backend.empty_outputs() for _ in inputs]
        due = [i for i, x in enumerate(inputs) if x is not None]
        if not due:
            return shares
        given = [inputs[i] for i in due]
        counts = [len(x.body) for x in given]  # type: ignore[union-attr]
        with self.timer("engine"):
            outputs = self.backend.infer(
                self._cat([x.image for x in given]),  # type: ignore[union-attr]
                self._cat([x.body for x in given]),  # type: ignore[union-attr]
                np.repeat(np.arange(len(given), dtype=np.int64), counts),
            )
        self.engine_calls += 1
        ends = np.cumsum(counts)
        for i, end, count in zip(due, ends, counts):
            shares[i] = {name: value[end - count : end] for name, value in outputs.items()}
        return shares
