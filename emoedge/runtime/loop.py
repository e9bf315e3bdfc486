"""The frame loop of a run: its streams, and the ticks that carry their frames through finding, tagging and writing.

A tick takes the next frame of every stream that has one — a file's next frame (waiting for its decoder, so no file
frame is ever skipped), a live source's newest frame only if one has arrived (so one slow or reconnecting camera never
holds the others) — asks each person finder once for the frames of its streams due for detection (ONE batched YOLO
call; a boxes file per stream), lets each stream's tracker number or carry its tracks, tags every stream's persons
with ONE engine call (`Tagger`) and hands each frame to its stream's outputs (video, window, explanations) and to
the run's (event log, MQTT). With `ahead` the finding runs one tick ahead on a thread of its own (`Ahead`).

Streams join and leave between ticks (`Loop.command`: the engine's `add` and `remove`), on the thread that finds, so
the list of streams is only ever changed by one thread; a removed stream's outputs are closed once its last frame has
been written. Observers (a live page, health checks) read `Stream.view()`, which never waits for the loop.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.runtime.ahead import Ahead
from emoedge.runtime.boxes import BoxesFile
from emoedge.runtime.finders import Found, PersonFinder
from emoedge.runtime.outputs import RunOutputs, StreamOutputs
from emoedge.runtime.persons import Persons
from emoedge.runtime.render import above_threshold
from emoedge.runtime.sources import Frame, FrameSource
from emoedge.runtime.streams import StreamSpec
from emoedge.runtime.summary import StreamStats, Timer
from emoedge.runtime.tagger import Item, Tagger, TrackState
from emoedge.runtime.tracking import Tracker
from emoedge.signals import StopRequest

log = logging.getLogger(__name__)

IDLE_S = 0.005  # a tick's wait when no stream has a frame ready (live sources only)
RATE_FRAMES = 30  # frames the live rate of a stream is measured over
TOP = 3  # categories a stream's view gives per track


@dataclass(frozen=True)
class TrackView:
    """One person of a stream's newest frame: track id, box, top categories (name, score) and modality weights."""

    id: int
    box: tuple[float, float, float, float]
    top: tuple[tuple[str, float], ...]
    weights: tuple[float, float, float]  # body, place, scene gist


@dataclass(frozen=True)
class StreamView:
    """A stream as observers see it now: state ("connecting", "live", "reconnecting", "reading", or how it ended:
    "ended", "stopped", "lost", "removed", "failed: <reason>"), frames written, recent frames per second, persons and
    tracks of its newest frame, reconnects, and seconds since its last frame (None before the first)."""

    id: str
    source: str
    state: str
    frames: int
    fps: float
    persons: int
    reconnects: int
    since_frame_s: float | None
    tracks: tuple[TrackView, ...]


class Stream:
    """One stream of a run: its source, finder, tracker, track state and outputs, and how far it got."""

    def __init__(
        self, spec: StreamSpec, source: FrameSource, finder: PersonFinder, tracker: Tracker, state: TrackState
    ) -> None:
        self.spec, self.source, self.finder, self.tracker, self.state = spec, source, finder, tracker, state
        self.frames: Iterator[Frame] = iter(source)
        self.outputs: StreamOutputs  # set when it joins the loop
        self.bar: Any = None  # its progress bar, set when it joins the loop
        self.taken = self.written = self.events = 0
        self.outcome = "running"
        self.started = self.seconds = 0.0
        self.last_tick: int | None = None  # set when it leaves: the tick that holds its last frame
        self._times: collections.deque[float] = collections.deque(maxlen=RATE_FRAMES)
        self._last: tuple[Persons, ModelCard] | None = None  # the newest frame's persons, made into views on demand

    def wrote(self, persons: Persons, card: ModelCard) -> None:
        """Count a written frame and keep what observers see of it."""
        self.written += 1
        self.events += len(persons)
        self._times.append(time.monotonic())
        self._last = (persons, card)  # no work per frame for observers that may never look
        if self.bar is not None:
            self.bar.update(1)

    def view(self) -> StreamView:
        times, last = tuple(self._times), self._last  # read once: the loop replaces them, never mutates them
        tracks = () if last is None else tuple(_track_view(last[0], i, last[1]) for i in range(len(last[0])))
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        return StreamView(
            id=self.spec.id,
            source=self.source.name,
            state=self.source.state if self.outcome == "running" else self.outcome,
            frames=self.written,
            fps=rate,
            persons=len(tracks),
            reconnects=self.source.reconnects,
            since_frame_s=time.monotonic() - times[-1] if times else None,
            tracks=tracks,
        )

    def stats(self) -> StreamStats:
        return StreamStats(
            id=self.spec.id,
            source=self.source.name,
            frames=self.written,
            events=self.events,
            fps=self.written / self.seconds if self.seconds > 0 else 0.0,
            outcome=self.outcome,
            video=None if self.spec.out is None else str(self.spec.out),
            explanations=self.outputs.explanations,
        )


@dataclass(frozen=True, eq=False)
class _Found:
    """A stream's frame in a tick, with its persons."""

    stream: Stream
    frame: Frame
    persons: Persons


Command = Callable[["Loop"], Any]  # applied between ticks on the finding thread; its result answers a Future


class Loop:
    """The ticks of a run: `_ticks` finds persons (and applies commands), `until_done` tags and writes them."""

    def __init__(
        self,
        tagger: Tagger,
        timer: Timer,
        outputs: RunOutputs,
        stop: StopRequest,
        *,
        max_frames: int | None,
        ahead: bool,
        progress: bool,
    ) -> None:
        self.tagger, self.timer, self.outputs, self.stop = tagger, timer, outputs, stop
        self.max_frames, self.ahead, self.progress = max_frames, ahead, progress
        self.streams: list[Stream] = []  # every stream the run has had, in the order they joined
        self.active: list[Stream] = []
        self.ticks = self._found_ticks = 0
        self.closed_window = False
        self._leaving: list[Stream] = []  # streams that left, their outputs still open
        self._started = time.perf_counter()
        self._commands: queue.SimpleQueue[tuple[Command, Future]] = queue.SimpleQueue()
        self._stack: ExitStack | None = None

    def join(self, stream: Stream, outputs: StreamOutputs) -> None:
        """A stream starts taking part (at the start, or between ticks)."""
        stream.outputs, stream.started = outputs, time.perf_counter()
        if self._stack is not None:
            stream.bar = self._stack.enter_context(_progress(stream, len(self.streams), self.max_frames, self.progress))
        self.streams.append(stream)
        self.active.append(stream)

    def command(self, change: Command) -> Future:
        """Apply `change(loop)` between ticks; the future gets its result (or its error)."""
        done: Future = Future()
        self._commands.put((change, done))
        return done

    def until_done(self, stack: ExitStack) -> float:
        """Tick until every stream has ended, failed or stopped, or a stop is requested; the seconds it took."""
        self._stack = stack
        for i, stream in enumerate(self.streams):
            stream.bar = stack.enter_context(_progress(stream, i, self.max_frames, self.progress))
        ticks: Any = self._ticks()
        if self.ahead:
            ticks = stack.enter_context(Ahead(ticks, lambda s: self.timer.record("decode", s), self._interrupt))
        for found in ticks:
            self.ticks += 1
            tagged = self.tagger([Item(f.stream.state, f.frame, f.persons) for f in found])
            for f, persons in zip(found, tagged):
                self._write(f.stream, f.frame, persons)
            self._close_left()
            if self.stop.requested or self.closed_window:
                break
        if isinstance(ticks, Ahead):
            ticks.close()
        for stream in list(self.active):  # left by a stop request or a closed window
            self.drop(stream, "stopped")
        self._apply_commands(ended=True)
        return time.perf_counter() - self._started

    def _ticks(self) -> Iterator[list[_Found]]:
        """Each tick's frames of the streams that have one, with their persons."""
        while not (self.stop.requested or self.closed_window):
            self._apply_commands()
            if not self.active:
                return
            waited = time.perf_counter()
            batch = self._next_frames()
            if not batch:
                time.sleep(IDLE_S)
                continue
            if not self.ahead:
                self.timer.record("decode", time.perf_counter() - waited)
            with self.timer("detect"):
                found = self._find(batch)
            if found:
                self._found_ticks += 1
                yield found

    def _apply_commands(self, *, ended: bool = False) -> None:
        """Apply the queued commands (`ended`: refuse them, the run is over); each answers its future."""
        for change, done in self._queued():
            try:
                if ended:
                    raise EmoedgeError("the run has ended")
                done.set_result(change(self))
            except BaseException as exc:  # handed to the caller (an API request): the run goes on
                done.set_exception(exc)

    def _queued(self) -> Iterator[tuple[Command, Future]]:
        while True:
            try:
                yield self._commands.get_nowait()
            except queue.Empty:
                return

    def _next_frames(self) -> list[tuple[Stream, Frame]]:
        """The next frame of each active stream that has one; streams that end, fail or reach `max_frames` leave."""
        batch = []
        for stream in list(self.active):
            if stream.source.live and not stream.source.ready():
                continue
            try:
                frame = next(stream.frames, None)
            except EmoedgeError as exc:
                self.fail(stream, exc)
                continue
            if frame is None:
                self._end(stream)
                continue
            batch.append((stream, frame))
            stream.taken += 1
            if self.max_frames is not None and stream.taken >= self.max_frames:
                self.drop(stream, "stopped", holds_frame=True)
        return batch

    def _find(self, batch: list[tuple[Stream, Frame]]) -> list[_Found]:
        """Persons of each frame: each finder asked once for its streams' frames due for detection, each stream's
        tracker numbering (or carrying, between detections) its tracks. A finder's error fails its streams only."""
        due: dict[int, list[tuple[Stream, Frame]]] = {}
        for stream, frame in batch:
            if stream.tracker.due() or isinstance(stream.finder, BoxesFile):  # a file is read on every frame (a
                due.setdefault(id(stream.finder), []).append((stream, frame))  # look-up): its `unused` stays true
        found: dict[int, Found] = {}
        for group in due.values():
            try:
                answers = group[0][0].finder.find([frame for _, frame in group])
            except EmoedgeError as exc:
                for stream, _ in group:
                    self.fail(stream, exc)
                continue
            for (stream, _), answer in zip(group, answers):
                found[id(stream)] = answer
        result = []
        for stream, frame in batch:
            if stream.outcome.startswith("failed"):
                continue
            given = found.get(id(stream)) if stream.tracker.due() else None
            result.append(_Found(stream, frame, stream.tracker(given, frame.image.shape[:2])))
        return result

    def _write(self, stream: Stream, frame: Frame, persons: Persons) -> None:
        if not stream.outputs.write(frame, persons, stream.source.fps, stream.source.name):
            self.closed_window = True
            self._interrupt()
        self.outputs.write(stream.spec.id, frame, persons)
        stream.wrote(persons, self.tagger.backend.card)

    def _close_left(self) -> None:
        """Finalise the outputs of streams that left once the tick holding their last frame is written."""
        for stream in list(self._leaving):
            if stream.last_tick is not None and stream.last_tick <= self.ticks:
                self._leaving.remove(stream)
                stream.outputs.close()

    def _end(self, stream: Stream) -> None:
        """The source gave its last frame (or was interrupted by a stop)."""
        if self.stop.requested or self.closed_window:
            self.drop(stream, "stopped")
            return
        self.drop(stream, "lost" if stream.source.live else "ended")
        _warn_unused(stream)

    def fail(self, stream: Stream, exc: EmoedgeError) -> None:
        if len(self.streams) > 1:
            log.warning("stream %s: %s; the other streams go on", stream.spec.id, exc)
        self.drop(stream, f"failed: {exc}")

    def drop(self, stream: Stream, outcome: str, *, holds_frame: bool = False) -> None:
        """`stream` leaves the loop with `outcome`; `holds_frame`: the tick being found still carries a frame of it."""
        stream.source.interrupt()  # its decoder stops now; the run closes it at the end
        if stream in self.active:
            self.active.remove(stream)
        stream.outcome = outcome
        stream.seconds = time.perf_counter() - stream.started
        stream.last_tick = self._found_ticks + (1 if holds_frame else 0)
        self._leaving.append(stream)

    def _interrupt(self) -> None:
        for stream in self.streams:
            stream.source.interrupt()


def _track_view(persons: Persons, i: int, card: ModelCard) -> TrackView:
    scores = persons.scores[i] if persons.scores is not None else None
    top = () if scores is None else tuple((card.categories[j], float(scores[j])) for j in above_threshold(scores, card))
    weights = persons.modality_weights[i] if persons.modality_weights is not None else (0.0, 0.0, 0.0)
    box = tuple(float(v) for v in persons.boxes[i])
    return TrackView(int(persons.ids[i]), box, top[:TOP], tuple(float(w) for w in weights))  # type: ignore[arg-type]


def _warn_unused(stream: Stream) -> None:
    """Given persons no frame asked for (a boxes file's entries for an unreadable image, a misspelt file name, a
    frame past the end) are said once the whole source has been seen, instead of being silently left out."""
    unused = stream.finder.unused()
    if unused:
        shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
        n = len(unused)
        log.warning("%s: %d entr%s matched no frame: %s", stream.finder.name, n, "y" if n == 1 else "ies", shown)


def _progress(stream: Stream, position: int, max_frames: int | None, enabled: bool) -> Any:
    """A tqdm bar per stream over its frames (a plain counter for live sources); a no-op object when disabled."""
    from tqdm import tqdm

    total = stream.source.total
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    name = Path(stream.source.name).name or stream.source.name
    desc = name if stream.spec.id == "cam0" else f"{stream.spec.id} {name}"
    return tqdm(total=total, unit="frame", desc=desc, position=position, disable=not enabled, file=sys.stderr)
