"""`run` with several sources: one process, one model, one engine call per tick for the persons of every stream.

A tick takes the next frame of every stream that has one — a file's next frame (waiting for its decoder, so no file
frame is ever skipped), a live source's newest frame only if one has arrived (so one slow or reconnecting camera
never holds the others) — finds persons (ONE batched YOLO call for the streams without a boxes file, then ByteTrack
per stream), and runs ONE engine call for all due persons: F frames and N persons, `frame` saying which frame each
person is in, so the context branches run once per frame. Each stream keeps its own tracks, reuse and smoothing,
so its results are those of a run of that stream alone. A stream that ends or fails is dropped with one line; the
others go on. Outputs are per stream: its video, its events (each carrying `stream`) in the one event log and, with
`publish`, on its MQTT topic.
"""

from __future__ import annotations

import itertools
import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoedge.backends import Backend, load_model
from emoedge.errors import EmoedgeError
from emoedge.fileio import output_file
from emoedge.runtime.detect import BoxesDetector, BoxTracker, YoloDetector
from emoedge.runtime.persons import Persons
from emoedge.runtime.pipeline import DEFAULT_FPS, STAGES, FrameTagger, StageStats, StopRequest, TaggingJob, Timer
from emoedge.runtime.publish import DEFAULT_QUEUE, MqttPublisher
from emoedge.runtime.render import draw
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.sinks import EventLog, VideoSink, person_record
from emoedge.runtime.sources import Frame, FrameSource, SourceSettings, open_source
from emoedge.runtime.streams import StreamSpec

log = logging.getLogger(__name__)

IDLE_S = 0.005  # a tick's wait when no stream has a frame ready (live sources only)


@dataclass(frozen=True)
class StreamStats:
    """One stream of a multi-stream run: its frames, person events and rate, and how it ended."""

    id: str
    source: str  # printable, credentials redacted
    frames: int
    events: int
    fps: float
    outcome: str  # "ended", "stopped" (a stop request, max_frames) or "failed: <reason>"
    video: str | None = None


@dataclass(frozen=True)
class MultiSummary:
    """What a multi-stream run did, per stream and in total, with the engine calls per tick and MQTT delivery."""

    streams: list[StreamStats]
    frames: int
    events: int
    inferences: int
    ticks: int
    engine_calls: int
    seconds: float
    fps: float  # frames of all streams per second
    stages: dict[str, StageStats]
    backend: str
    detector: str
    interrupted: bool
    published: int = 0  # events the MQTT broker acknowledged
    dropped: int = 0  # events refused because the publish queue was full
    undelivered: int = 0  # events still unacknowledged when the run ended
    log: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON-able form written as the log's last line (type "summary")."""
        data = asdict(self)
        data["stages"] = {name: asdict(s) for name, s in self.stages.items()}
        data["log"] = None if self.log is None else str(self.log)
        return {"type": "summary", **data}

    def describe(self) -> str:
        """Human-readable lines: totals, engine calls per tick, one line per stream."""
        lines = [
            f"{len(self.streams)} streams: {self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS in total; "
            f"{self.events} person events, {self.inferences} inferred in {self.engine_calls} engine calls over "
            f"{self.ticks} ticks" + (" (interrupted)" if self.interrupted else "")
        ]
        for s in self.streams:
            video = f", video {s.video}" if s.video else ""
            lines.append(f"  {s.id}: {s.frames} frames, {s.fps:.1f} FPS, {s.events} events, {s.outcome}{video}")
        if self.published or self.dropped or self.undelivered:
            lines.append(
                f"MQTT: {self.published} events delivered, {self.dropped} dropped (queue full), "
                f"{self.undelivered} undelivered at exit"
            )
        if self.log is not None:
            lines.append(f"written: events {self.log}")
        return "\n".join(lines)


class _Stream:
    """One stream's source, person finder, per-track state, video and counts."""

    def __init__(self, spec: StreamSpec, source: FrameSource, tagger: FrameTagger, tracker: BoxTracker | None) -> None:
        self.spec, self.source, self.tagger, self.tracker = spec, source, tagger, tracker
        self.frames = iter(source)
        self.video: VideoSink | None = None
        self.count = self.events = 0
        self.outcome = "stopped"
        self.seconds = 0.0


def run_streams(
    specs: list[StreamSpec],
    model: Path | str | Backend,
    *,
    detector: Path | str | None = None,
    events: Path | None = None,
    publish: str | None = None,
    publish_queue: int = DEFAULT_QUEUE,
    settings: RunSettings = RunSettings(),
) -> MultiSummary:
    """Tag every person of every stream of `specs` with emotions in one process (see the module docstring).

    `detector`: YOLO weights for the streams without a boxes file; `events`: one JSON Lines log for all streams;
    `publish`: mqtt://[user:pass@]host[:port]/topic/{stream}, QoS 1, at most `publish_queue` events held offline.
    `settings.max_frames` caps each stream.
    """
    s = settings
    if s.show:
        raise EmoedgeError("--show opens one window: it takes a single source")
    if s.explain_every:
        raise EmoedgeError("--explain-every takes a single source: explain one stream at a time")
    for spec in specs:
        if spec.out is not None:
            output_file(spec.out, f"output video of stream {spec.id}")
    if events is not None:
        output_file(events, "events file")
    with ExitStack() as stack:
        publisher = stack.enter_context(MqttPublisher(publish, queue=publish_queue)) if publish else None
        waits = SourceSettings(connect_timeout_s=float(s.connect_timeout))
        sources = [stack.enter_context(open_source(spec.source, settings=waits)) for spec in specs]
        yolo = None
        if any(spec.boxes is None for spec in specs):
            yolo = YoloDetector(detector, device=s.device, download=s.download, size=s.detect_size)
        backend = model if isinstance(model, Backend) else load_model(model, device=s.device)
        timer = Timer()
        streams = []
        ids = itertools.count(1)  # one id counter for the tracked streams: ids never collide across streams
        for spec, source in zip(specs, sources):
            finder = BoxesDetector(spec.boxes, detect_every=s.detect_every, ids=ids) if spec.boxes is not None else yolo
            tagger = FrameTagger(backend, finder, every=s.every, smooth=s.smooth, timer=timer)  # type: ignore[arg-type]
            tracker = BoxTracker(s.detect_every, ids) if spec.boxes is None else None
            streams.append(_Stream(spec, source, tagger, tracker))
        stop = stack.enter_context(StopRequest())
        for source in sources:
            stop.on_stop(source.interrupt)
        log_file = stack.enter_context(EventLog(Path(events), backend.card)) if events is not None else None
        for stream in streams:
            stack.callback(_close_video, stream)
        if s.progress:
            names = ", ".join(f"{st.spec.id}={st.source.name}" for st in streams)
            print(f"model: {backend.reason}\nstreams: {names}", flush=True)
        loop = _Loop(streams, backend, yolo, timer, log_file, publisher, s.max_frames)
        seconds = loop.run(stop)
        for stream in streams:
            stream.source.close()
            _close_video(stream)
        if publisher is not None:
            publisher.close()
        frames = sum(st.count for st in streams)
        summary = MultiSummary(
            streams=[_stats(st) for st in streams],
            frames=frames,
            events=sum(st.events for st in streams),
            inferences=sum(st.tagger.inferences for st in streams),
            ticks=loop.ticks,
            engine_calls=loop.engine_calls,
            seconds=seconds,
            fps=frames / seconds if seconds > 0 else 0.0,
            stages={name: StageStats.of(timer.seconds[name]) for name in STAGES if timer.seconds[name]},
            backend=backend.reason,
            detector=", ".join(sorted({st.tagger.detector.name for st in streams})),
            interrupted=stop.requested,
            published=0 if publisher is None else publisher.published,
            dropped=0 if publisher is None else publisher.dropped,
            undelivered=0 if publisher is None else publisher.undelivered,
            log=None if events is None else Path(events),
            settings={
                "every": s.every,
                "smooth": float(s.smooth),
                "max_frames": s.max_frames,
                "detect_every": s.detect_every,
                "detect_size": s.detect_size,
            },
        )
        if log_file is not None:
            log_file.write(summary.to_record())
    if stop.requested and not summary.interrupted:
        summary = replace(summary, interrupted=True)
    if s.progress:
        print(summary.describe())
    return summary


class _Loop:
    """The ticks of a multi-stream run (see the module docstring)."""

    def __init__(
        self,
        streams: list[_Stream],
        backend: Backend,
        yolo: YoloDetector | None,
        timer: Timer,
        log_file: EventLog | None,
        publisher: MqttPublisher | None,
        max_frames: int | None,
    ) -> None:
        self.streams, self.backend, self.yolo, self.timer = streams, backend, yolo, timer
        self.log_file, self.publisher, self.max_frames = log_file, publisher, max_frames
        self.ticks = self.engine_calls = 0
        self._started = 0.0

    def run(self, stop: StopRequest) -> float:
        """Tick until every stream has ended, failed or stopped, or a stop is requested; the seconds it took."""
        self._started = time.perf_counter()
        active = list(self.streams)
        while active and not stop.requested:
            batch = self._next_frames(active)
            if not batch:
                time.sleep(IDLE_S)
                continue
            self.ticks += 1
            found = self._detect(batch, active)
            jobs = [stream.tagger.prepare(frame, persons) for stream, frame, persons in found]
            outputs = self._infer(jobs)
            for (stream, frame, _), job, out in zip(found, jobs, outputs):
                self._write(stream, frame, stream.tagger.finish(job, out))
            for stream, _, _ in found:
                if self.max_frames is not None and stream.count >= self.max_frames:
                    self._drop(active, stream, "stopped")
        for stream in list(active):  # left by a stop request
            self._drop(active, stream, "stopped")
        return time.perf_counter() - self._started

    def _next_frames(self, active: list[_Stream]) -> list[tuple[_Stream, Frame]]:
        """The next frame of each stream that has one; ended and failed streams leave `active`."""
        batch = []
        waited = time.perf_counter()
        for stream in list(active):
            if stream.source.live and not stream.source.ready():
                continue
            try:
                frame = next(stream.frames, None)
            except EmoedgeError as exc:
                self._fail(active, stream, exc)
                continue
            if frame is None:
                self._drop(active, stream, "ended" if not stream.source.live else "lost")
                continue
            batch.append((stream, frame))
        if batch:
            self.timer.seconds["decode"].append(time.perf_counter() - waited)
        return batch

    def _drop(self, active: list[_Stream], stream: _Stream, outcome: str) -> None:
        stream.source.interrupt()  # its decoder stops now; the run closes it at the end
        active.remove(stream)
        stream.outcome = outcome
        stream.seconds = time.perf_counter() - self._started

    def _detect(
        self, batch: list[tuple[_Stream, Frame]], active: list[_Stream]
    ) -> list[tuple[_Stream, Frame, Persons]]:
        """Persons of each frame: boxes files read per stream (a stream whose boxes fail it is dropped with one
        line), YOLO once for the other streams' frames that are due for detection (`detect_every`)."""
        with self.timer("detect"):
            found: dict[int, Persons] = {}
            for i, (stream, frame) in enumerate(batch):
                if stream.tracker is None:
                    try:
                        found[i] = stream.tagger.detector(frame)
                    except EmoedgeError as exc:
                        self._fail(active, stream, exc)
            wanted = []
            for i, (stream, frame) in enumerate(batch):
                if stream.tracker is not None and stream.tracker.detects():
                    wanted.append(i)
                elif stream.tracker is not None:  # between detections: the tracker carries the tracks
                    found[i] = stream.tracker.coast(frame.image.shape[:2])
            if wanted and self.yolo is not None:
                detections = self.yolo.detect([batch[i][1].image for i in wanted])
                for i, (boxes, confidences) in zip(wanted, detections):
                    stream, frame = batch[i]
                    found[i] = stream.tracker(boxes, confidences, frame.image.shape[:2])  # type: ignore[misc]
            return [(*batch[i], found[i]) for i in sorted(found)]

    def _fail(self, active: list[_Stream], stream: _Stream, exc: EmoedgeError) -> None:
        log.warning("stream %s: %s; the other streams go on", stream.spec.id, exc)
        self._drop(active, stream, f"failed: {exc}")

    def _infer(self, jobs: list[TaggingJob]) -> list[dict[str, np.ndarray]]:
        """ONE engine call for the due persons of every frame; each job's share of the outputs."""
        due = [i for i, job in enumerate(jobs) if job.inputs is not None]
        shares = [self.backend.empty_outputs() for _ in jobs]
        if not due:
            return shares
        inputs = [jobs[i].inputs for i in due]
        counts = [len(x.body) for x in inputs]  # type: ignore[union-attr]
        with self.timer("engine"):
            outputs = self.backend.infer(
                torch.cat([x.image for x in inputs]),  # type: ignore[union-attr]
                torch.cat([x.body for x in inputs]),  # type: ignore[union-attr]
                np.repeat(np.arange(len(inputs), dtype=np.int64), counts),
            )
        self.engine_calls += 1
        ends = np.cumsum(counts)
        for i, end, count in zip(due, ends, counts):
            shares[i] = {name: value[end - count : end] for name, value in outputs.items()}
        return shares

    def _write(self, stream: _Stream, frame: Frame, persons: Persons) -> None:
        """The frame's video and events: drawn and written if the stream has a video, logged and published."""
        if stream.spec.out is not None:
            with self.timer("render"):
                annotated = draw(frame.image, persons, self.backend.card)
            with self.timer("write"):
                if stream.video is None:
                    height, width = frame.image.shape[:2]
                    fps = stream.source.fps or DEFAULT_FPS
                    stream.video = VideoSink(Path(stream.spec.out), fps, (width, height))
                stream.video.write(annotated)
        for i in range(len(persons)):
            record = {"type": "person", "stream": stream.spec.id}
            record.update(person_record(frame.index, frame.timestamp, persons, i, self.backend.card))
            if self.log_file is not None:
                self.log_file.write(record)
            if self.publisher is not None:
                self.publisher.publish(record, stream.spec.id)
        stream.count += 1
        stream.events += len(persons)


def _close_video(stream: _Stream) -> None:
    if stream.video is not None:
        stream.video.close()


def _stats(stream: _Stream) -> StreamStats:
    seconds = stream.seconds or 0.0
    return StreamStats(
        id=stream.spec.id,
        source=stream.source.name,
        frames=stream.count,
        events=stream.events,
        fps=stream.count / seconds if seconds > 0 else 0.0,
        outcome=stream.outcome,
        video=None if stream.spec.out is None else str(stream.spec.out),
    )
