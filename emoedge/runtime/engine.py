"""`run`: the one frame loop of emoedge, for any number of streams — a single source is the case N = 1.

A tick takes the next frame of every stream that has one — a file's next frame (waiting for its decoder, so no file
frame is ever skipped), a live source's newest frame only if one has arrived (so one slow or reconnecting camera never
holds the others) — asks each person finder once for the frames of its streams due for detection (ONE batched YOLO
call; a boxes file per stream), lets each stream's tracker number or carry its tracks, tags every stream's persons
with ONE engine call (`Tagger`) and hands each frame to its stream's outputs (video, window, explanations) and to
the run's (event log, MQTT). With `overlap` the finding runs one tick ahead on a thread of its own (`Ahead`).

A stream that ends, is cut at `max_frames` or fails (its boxes file, its decoder) leaves the loop with one line; the
others go on; the run fails (one line) only when every stream failed. A stop request (SIGINT, SIGTERM: see
`emoedge.signals`) interrupts every source, whose waits (for a frame, for a camera not up yet, between reconnect
attempts) end at once; the current tick is finished, the videos finalised and the summary written, whatever the run
is doing and however many signals come: each video holds exactly the frames its stream's summary counts.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emoedge.backends import Backend, load_model
from emoedge.errors import EmoedgeError
from emoedge.fileio import output_file, output_folder
from emoedge.runtime.ahead import Ahead
from emoedge.runtime.boxes import BoxesFile
from emoedge.runtime.finders import Found, PersonFinder, YoloFinder
from emoedge.runtime.outputs import RunOutputs, StreamOutputs
from emoedge.runtime.persons import Persons
from emoedge.runtime.publish import MqttPublisher
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.sources import Frame, FrameSource, SourceSettings, open_source
from emoedge.runtime.streams import StreamSpec, streams_from_args
from emoedge.runtime.summary import RunSummary, StreamStats, Timer
from emoedge.runtime.tagger import Item, Tagger, TrackState
from emoedge.runtime.tracking import Tracker
from emoedge.runtime.weights import detector_weights
from emoedge.signals import StopRequest, stop_request

log = logging.getLogger(__name__)

IDLE_S = 0.005  # a tick's wait when no stream has a frame ready (live sources only)


def run(
    source: str | Sequence[StreamSpec],
    model: Path | str | Backend,
    *,
    boxes: Path | None = None,
    out: Path | None = None,
    detector: Path | str | PersonFinder | None = None,
    events: Path | None = None,
    publish: str | None = None,
    explain_dir: Path | None = None,
    settings: RunSettings = RunSettings(),
) -> RunSummary:
    """Tag every person of every frame of every stream with emotions (see the module docstring).

    `source`: one source (webcam index, file, URL or image folder; `boxes` and `out` are its boxes file and video)
    or the streams (`StreamSpec`: id, source, boxes, out). `model`: checkpoint, ONNX or engine file, a served model's
    URL, or a loaded Backend. Streams without boxes find persons with `detector`: YOLO weights (default yolo11n.pt,
    fetched when missing unless `settings.download` is off) or any `PersonFinder`. `events`: one JSON Lines log for
    all streams; `publish`: mqtt[s]://[user:pass@]host[:port]/topic/{stream}, QoS 1, at most
    `settings.publish_queue` events held offline; with `settings.explain_every` K, a Figure-1 image of every person
    of every K-th frame of each stream into `explain_dir`/<stream>/ (checkpoints only).
    """
    s = settings
    specs = _specs(source, boxes, out)
    if detector is not None and not _is_finder(detector) and all(spec.boxes is not None for spec in specs):
        raise EmoedgeError("give either a detector (--detector WEIGHTS) or a boxes file (--boxes FILE), not both")
    for spec in specs:  # before anything loads or opens: one line within a second
        if spec.out is not None:
            output_file(spec.out, f"output video of stream {spec.id}")
    if events is not None:
        output_file(events, "events file")
    if not _is_finder(detector) and any(spec.boxes is None for spec in specs):  # before torch loads
        detector = detector_weights(detector, download=s.download)  # type: ignore[arg-type]
    explain_into = _explain_request(model, s.explain_every, explain_dir)
    with ExitStack() as stack:
        publisher = stack.enter_context(MqttPublisher(publish, queue=s.publish_queue)) if publish else None
        # The sources first: their problems (a missing file, a bad URL) are one line before the model loads, and
        # cameras connect while it loads.
        waits = SourceSettings(connect_timeout_s=float(s.connect_timeout))
        sources = [stack.enter_context(open_source(spec.source, settings=waits)) for spec in specs]
        finders = _finders(specs, detector, s)
        backend = model if isinstance(model, Backend) else load_model(model, device=s.device)
        explainer = None if explain_into is None else _explainer(Path(model), s.explain_every, explain_into)
        timer = Timer()
        ids = itertools.count(1)  # one id counter for every tracker: ids never collide across streams
        streams = [
            _Stream(spec, source, finder, Tracker(s.detect_every, ids, gives_ids=finder.gives_ids), s)
            for spec, source, finder in zip(specs, sources, finders)
        ]
        stop = stack.enter_context(stop_request())  # before the outputs, so that it outlives their closing
        for source in sources:
            stop.on_stop(source.interrupt)
        run_outputs = RunOutputs(backend.card, stack, events=events, publisher=publisher)
        for stream in streams:
            stream.outputs = StreamOutputs(
                stream.spec.id, backend.card, timer, video=stream.spec.out, show=s.show, explainer=explainer
            )
            stack.callback(stream.outputs.close)
        ahead = s.overlap == "on" or (s.overlap == "auto" and str(backend.input_device).startswith("cuda"))
        if s.progress:
            names = ", ".join(f"{st.spec.id}={st.source.name}" for st in streams)
            print(f"model: {backend.reason}\npersons: {_persons_from(streams)}\nstreams: {names}", flush=True)
        loop = _Loop(streams, Tagger(backend, timer), timer, run_outputs, stop, s, ahead)
        seconds = loop.until_done(stack)
        for stream in streams:  # decoders stopped and videos finalised before the summary is decided
            stream.source.close()
            stream.outputs.close()
        if publisher is not None:
            publisher.close()
        summary = _summary(streams, loop, backend, publisher, events, seconds, s, ahead)
        run_outputs.finish(summary)
    if stop.requested and not summary.interrupted:  # a signal after the record, while the log closed
        summary = replace(summary, interrupted=True)
    if s.progress:
        print(summary.describe())
    _fail_if_all_failed(summary)
    return summary


class _Stream:
    """One stream of a run: its source, finder, tracker, track state and outputs, and how far it got."""

    def __init__(
        self, spec: StreamSpec, source: FrameSource, finder: PersonFinder, tracker: Tracker, s: RunSettings
    ) -> None:
        self.spec, self.source, self.finder, self.tracker = spec, source, finder, tracker
        self.state = TrackState(s.every, s.smooth)
        self.frames: Iterator[Frame] = iter(source)
        self.outputs: StreamOutputs  # set once the run's outputs open
        self.bar: Any  # its progress bar, set when the loop starts
        self.taken = self.written = self.events = 0
        self.outcome = "running"
        self.seconds = 0.0


@dataclass(frozen=True, eq=False)
class _Found:
    """A stream's frame in a tick, with its persons."""

    stream: _Stream
    frame: Frame
    persons: Persons


class _Loop:
    """The ticks of a run (see the module docstring): `_ticks` finds persons, `until_done` tags and writes them."""

    def __init__(
        self,
        streams: list[_Stream],
        tagger: Tagger,
        timer: Timer,
        outputs: RunOutputs,
        stop: StopRequest,
        s: RunSettings,
        ahead: bool,
    ) -> None:
        self.streams, self.tagger, self.timer, self.outputs, self.stop = streams, tagger, timer, outputs, stop
        self.max_frames, self.ahead, self.progress = s.max_frames, ahead, s.progress
        self.active = list(streams)
        self.ticks = 0
        self.closed_window = False
        self._started = 0.0

    def until_done(self, stack: ExitStack) -> float:
        """Tick until every stream has ended, failed or stopped, or a stop is requested; the seconds it took."""
        self._started = time.perf_counter()
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
            if self.stop.requested or self.closed_window:
                break
        if isinstance(ticks, Ahead):
            ticks.close()
        for stream in list(self.active):  # left by a stop request or a closed window
            self._drop(stream, "stopped")
        return time.perf_counter() - self._started

    def _ticks(self) -> Iterator[list[_Found]]:
        """Each tick's frames of the streams that have one, with their persons."""
        while self.active and not (self.stop.requested or self.closed_window):
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
                yield found

    def _next_frames(self) -> list[tuple[_Stream, Frame]]:
        """The next frame of each active stream that has one; streams that end, fail or reach `max_frames` leave."""
        batch = []
        for stream in list(self.active):
            if stream.source.live and not stream.source.ready():
                continue
            try:
                frame = next(stream.frames, None)
            except EmoedgeError as exc:
                self._fail(stream, exc)
                continue
            if frame is None:
                self._end(stream)
                continue
            batch.append((stream, frame))
            stream.taken += 1
            if self.max_frames is not None and stream.taken >= self.max_frames:
                self._drop(stream, "stopped")
        return batch

    def _find(self, batch: list[tuple[_Stream, Frame]]) -> list[_Found]:
        """Persons of each frame: each finder asked once for its streams' frames due for detection, each stream's
        tracker numbering (or carrying, between detections) its tracks. A finder's error fails its streams only."""
        due: dict[int, list[tuple[_Stream, Frame]]] = {}
        for stream, frame in batch:
            if stream.tracker.due() or isinstance(stream.finder, BoxesFile):  # a file is read on every frame (a
                due.setdefault(id(stream.finder), []).append((stream, frame))  # look-up): its `unused` stays true
        found: dict[int, Found] = {}
        for group in due.values():
            try:
                answers = group[0][0].finder.find([frame for _, frame in group])
            except EmoedgeError as exc:
                for stream, _ in group:
                    self._fail(stream, exc)
                continue
            for (stream, _), answer in zip(group, answers):
                found[id(stream)] = answer
        result = []
        for stream, frame in batch:
            if stream.outcome.startswith("failed"):
                continue
            shape = frame.image.shape[:2]
            given = found.get(id(stream)) if stream.tracker.due() else None
            result.append(_Found(stream, frame, stream.tracker(given, shape)))
        return result

    def _write(self, stream: _Stream, frame: Frame, persons: Persons) -> None:
        if not stream.outputs.write(frame, persons, stream.source.fps, stream.source.name):
            self.closed_window = True
            self._interrupt()
        self.outputs.write(stream.spec.id, frame, persons)
        stream.written += 1
        stream.events += len(persons)
        stream.bar.update(1)

    def _end(self, stream: _Stream) -> None:
        """The source gave its last frame (or was interrupted by a stop)."""
        if self.stop.requested or self.closed_window:
            self._drop(stream, "stopped")
            return
        self._drop(stream, "lost" if stream.source.live else "ended")
        _warn_unused(stream)

    def _fail(self, stream: _Stream, exc: EmoedgeError) -> None:
        if len(self.streams) > 1:
            log.warning("stream %s: %s; the other streams go on", stream.spec.id, exc)
        self._drop(stream, f"failed: {exc}")

    def _drop(self, stream: _Stream, outcome: str) -> None:
        stream.source.interrupt()  # its decoder stops now; the run closes it at the end
        if stream in self.active:
            self.active.remove(stream)
        stream.outcome = outcome
        stream.seconds = time.perf_counter() - self._started

    def _interrupt(self) -> None:
        for stream in self.streams:
            stream.source.interrupt()


def _specs(source: str | Sequence[StreamSpec], boxes: Path | None, out: Path | None) -> list[StreamSpec]:
    if isinstance(source, (str, Path)):
        return streams_from_args([str(source)], [] if boxes is None else [Path(boxes)], out)
    if boxes is not None or out is not None:
        raise EmoedgeError("boxes and out belong to each stream (StreamSpec) when several are given")
    return list(source)


def _is_finder(detector: object) -> bool:
    """A `PersonFinder` built by the caller (not weights to load)."""
    return detector is not None and not isinstance(detector, (str, Path))


def _finders(specs: list[StreamSpec], detector: Path | str | PersonFinder | None, s: RunSettings) -> list[PersonFinder]:
    """Each stream's finder: its boxes file, or the run's one detector (its prediction batched over the streams)."""
    shared: Any = detector if _is_finder(detector) else None
    if shared is None and any(spec.boxes is None for spec in specs):
        shared = YoloFinder(detector, device=s.device, download=s.download, size=s.detect_size)  # type: ignore[arg-type]
    return [BoxesFile(spec.boxes) if spec.boxes is not None else shared for spec in specs]


def _persons_from(streams: list[_Stream]) -> str:
    """How each stream's persons are found, e.g. "YOLO yolo11n.pt, every 3 frames + ByteTrack"."""
    ways = []
    for stream in streams:
        tracked = not stream.finder.gives_ids
        every = f", every {stream.tracker.detect_every} frames" if stream.tracker.detect_every > 1 else ""
        ways.append(stream.finder.name + (f"{every} + ByteTrack" if tracked else ""))
    return ", ".join(dict.fromkeys(ways))


def _summary(
    streams: list[_Stream],
    loop: _Loop,
    backend: Backend,
    publisher: MqttPublisher | None,
    events: Path | None,
    seconds: float,
    s: RunSettings,
    ahead: bool,
) -> RunSummary:
    frames = sum(st.written for st in streams)
    return RunSummary(
        streams=[_stats(st) for st in streams],
        frames=frames,
        events=sum(st.events for st in streams),
        inferences=loop.tagger.inferences,
        ticks=loop.ticks,
        engine_calls=loop.tagger.engine_calls,
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else 0.0,
        stages=loop.timer.stats(),
        backend=backend.reason,
        detector=_persons_from(streams),
        interrupted=loop.stop.requested,
        published=0 if publisher is None else publisher.published,
        dropped=0 if publisher is None else publisher.dropped,
        undelivered=0 if publisher is None else publisher.undelivered,
        log=None if events is None else Path(events),
        explanations=sum(st.outputs.explanations for st in streams),
        settings={
            "every": s.every,
            "smooth": float(s.smooth),
            "crops": loop.tagger.preprocess.crop_method,
            "max_frames": s.max_frames,
            "detect_every": s.detect_every,
            "detect_size": s.detect_size,
            "overlap": ahead,
        },
    )


def _stats(stream: _Stream) -> StreamStats:
    return StreamStats(
        id=stream.spec.id,
        source=stream.source.name,
        frames=stream.written,
        events=stream.events,
        fps=stream.written / stream.seconds if stream.seconds > 0 else 0.0,
        outcome=stream.outcome,
        video=None if stream.spec.out is None else str(stream.spec.out),
        explanations=stream.outputs.explanations,
    )


def _fail_if_all_failed(summary: RunSummary) -> None:
    """A run whose every stream failed is a failed command (exit 2): its first reason, as one line."""
    failed = [s for s in summary.streams if s.outcome.startswith("failed: ")]
    if failed and len(failed) == len(summary.streams):
        reason = failed[0].outcome.removeprefix("failed: ")
        raise EmoedgeError(reason if len(failed) == 1 else f"every stream failed; stream {failed[0].id}: {reason}")


def _warn_unused(stream: _Stream) -> None:
    """Given persons no frame asked for (a boxes file's entries for an unreadable image, a misspelt file name, a
    frame past the end) are said once the whole source has been seen, instead of being silently left out."""
    unused = stream.finder.unused()
    if unused:
        shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
        n = len(unused)
        log.warning("%s: %d entr%s matched no frame: %s", stream.finder.name, n, "y" if n == 1 else "ies", shown)


def _explain_request(model: Path | str | Backend, every: int, folder: Path | None) -> Path | None:
    """Where explanations go (None: not asked for); a request that cannot be served is one line before anything
    opens or loads."""
    if not every and folder is None:
        return None
    if not every or folder is None:
        raise EmoedgeError(
            "--explain-every K and --explain-dir DIR go together: every K-th frame's persons explained into DIR"
        )
    if isinstance(model, Backend):
        raise EmoedgeError("--explain-every: explanations need the checkpoint's path, not a loaded backend")
    import captum  # noqa: F401  (the `explain` extra: its absence is one line before anything loads)

    from emoedge.explain.person import require_checkpoint

    require_checkpoint(Path(model), "--explain-every: explanations")
    return output_folder(folder, "explanation folder")


def _explainer(model: Path, every: int, folder: Path) -> Any:
    from emoedge.explain.every import FrameExplainer

    return FrameExplainer(model, every, folder)


def _progress(stream: _Stream, position: int, max_frames: int | None, enabled: bool) -> Any:
    """A tqdm bar per stream over its frames (a plain counter for live sources); a no-op object when disabled."""
    from tqdm import tqdm

    total = stream.source.total
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    name = Path(stream.source.name).name or stream.source.name
    desc = name if stream.spec.id == "cam0" else f"{stream.spec.id} {name}"
    return tqdm(total=total, unit="frame", desc=desc, position=position, disable=not enabled, file=sys.stderr)
