"""Persons → persons with emotions: crops prepared, ONE engine call for a whole tick, results reused and smoothed.

A tick brings one frame of each stream that has one. Each frame's persons due for inference (new tracks, and tracks
whose result is `every` frames old) are cropped; the engine runs once for all of them — F frames and N persons,
`frame` saying which frame each person is in, so the context branches run once per frame — and each stream's share
of the outputs is merged with its reused results and smoothed along its tracks (`TrackState`, one per stream, so a
stream's results are those of a run of it alone). torch is imported when a Tagger is built, not with this module:
a run's bad input (a missing detector, say) is one line before torch loads.

A served model that stops answering (`ModelUnavailable`: its server restarting) is an outage, not the run's end:
the tick's frames go on untagged (drawn with their boxes, no events), the model is asked again every `RETRY_S`, and
tagging resumes when it answers; an outage longer than `--model-timeout-s` ends the run with one line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emoedge.backends import Backend
from emoedge.errors import EmoedgeError, ModelUnavailable
from emoedge.runtime.persons import Persons
from emoedge.runtime.smoothing import ResultCache, ScoreSmoother
from emoedge.runtime.sources import Frame
from emoedge.runtime.summary import Timer

if TYPE_CHECKING:
    from emoedge.runtime.preprocess import EngineInputs

log = logging.getLogger(__name__)

RETRY_S = 0.5  # during an outage, how often the model is asked again (ticks in between go untagged without asking)


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
    """Tags a tick's frames with one engine call; counts `inferences` (persons run) and `engine_calls`, and the
    model's outages (`outages`: their seconds; `untagged`: frames that went without emotions meanwhile)."""

    def __init__(self, backend: Backend, timer: Timer, *, model_timeout_s: float = 60.0) -> None:
        import torch

        from emoedge.runtime.preprocess import Preprocessor

        self.backend, self.timer, self._cat = backend, timer, torch.cat
        self.preprocess = Preprocessor(backend.card, backend.input_device)
        self.model_timeout_s = model_timeout_s
        self.inferences = self.engine_calls = self.untagged = 0
        self.outages: list[float] = []  # seconds of each outage that ended
        self._down_since: float | None = None  # an outage under way
        self._next_try = 0.0
        self._error = ""  # the outage's last error

    def __call__(self, items: list[Item]) -> list[Persons]:
        """Each item's persons with the model's outputs, in order (without, while the model is unavailable)."""
        now = time.monotonic()
        if self._down_since is not None:
            if now - self._down_since > self.model_timeout_s:
                raise EmoedgeError(f"{self._error}; no answer for {now - self._down_since:.0f} s (--model-timeout-s "
                                   f"{self.model_timeout_s:g})")  # fmt: skip
            if now < self._next_try:
                return self._without_model(items)
        try:
            tagged = self._tag(items)
        except ModelUnavailable as exc:
            self._unavailable(exc, now)
            return self._without_model(items)
        if self._down_since is not None:
            self.outages.append(now - self._down_since)
            log.warning("the model answers again after %.1f s; %d frames went untagged so far", self.outages[-1],
                        self.untagged)  # fmt: skip
            self._down_since = None
        return tagged

    @property
    def outage_s(self) -> float | None:
        """Seconds of the outage under way (None: the model answers)."""
        return None if self._down_since is None else time.monotonic() - self._down_since

    def _unavailable(self, exc: ModelUnavailable, now: float) -> None:
        if self._down_since is None:
            self._down_since = now
            log.warning("%s; frames go on untagged while it is asked again for up to %g s (--model-timeout-s)", exc,
                        self.model_timeout_s)  # fmt: skip
        self._error, self._next_try = str(exc), now + RETRY_S

    def _without_model(self, items: list[Item]) -> list[Persons]:
        self.untagged += len(items)
        return [item.persons for item in items]

    def _tag(self, items: list[Item]) -> list[Persons]:
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
