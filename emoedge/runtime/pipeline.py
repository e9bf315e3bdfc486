"""`run`: a video source through detection, tracking and the emotion model to an annotated video and an event log.

Per frame: decode (on the source's thread) → persons with track ids → the engine inputs (whole frame once, all
due persons' crops as one batch) → ONE engine call → per-track reuse and smoothing → drawing and writing.
With `every` k a track is re-inferred every k-th frame, so frames where no person is due skip the engine.

Interrupting (Ctrl-C, SIGTERM) sets one stop request: the loop reads it after each frame, and it interrupts the
source, whose every wait (for a frame, for a camera not up yet, between reconnect attempts) ends at once. The current
frame is finished and logged, the decoder stopped, the video finalised and the summary written, whatever the run is
doing and however many signals come: the video holds exactly the frames the summary counts.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emoedge.backends import Backend, load_model
from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.fileio import output_file, output_folder
from emoedge.runtime.ahead import DetectedFrames
from emoedge.runtime.detect import Detector, open_detector

if TYPE_CHECKING:
    from emoedge.explain.every import FrameExplainer
from emoedge.runtime.persons import Persons
from emoedge.runtime.preprocess import EngineInputs, Preprocessor
from emoedge.runtime.render import draw
from emoedge.runtime.settings import SMOOTH, RunSettings
from emoedge.runtime.sinks import EventLog, VideoSink, Window
from emoedge.runtime.smoothing import ResultCache, ScoreSmoother
from emoedge.runtime.sources import Frame, FrameSource, SourceSettings, open_source

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # for the output video when the source does not say (image folders)
STAGES = ("decode", "detect", "preprocess", "engine", "smooth", "render", "write", "explain")


@dataclass(frozen=True)
class StageStats:
    """Latency of one stage over the frames where it ran, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> StageStats:
        if not seconds:
            return cls(0, 0.0, 0.0, 0.0)
        ms = np.asarray(seconds) * 1000.0
        return cls(len(ms), float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 90)))


@dataclass(frozen=True)
class RunSummary:
    """What a run did: frames, events, engine work, speed and per-stage latency, and where the outputs are."""

    source: str
    frames: int
    events: int  # person records (one per person per processed frame)
    inferences: int  # persons run through the engine (fewer than events with every > 1)
    engine_calls: int
    seconds: float
    fps: float
    stages: dict[str, StageStats]
    backend: str
    detector: str
    interrupted: bool  # a stop was requested (Ctrl-C, SIGTERM): frames may be missing at the end
    video: Path | None = None
    log: Path | None = None
    explanations: int = 0  # Figure-1 images written (--explain-every)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON-able form written as the log's last line (type "summary")."""
        data = asdict(self)
        data["stages"] = {name: asdict(s) for name, s in self.stages.items()}
        data["video"] = None if self.video is None else str(self.video)
        data["log"] = None if self.log is None else str(self.log)
        return {"type": "summary", **data}

    def describe(self) -> str:
        """Human-readable lines: throughput, then one line per stage."""
        head = (
            f"{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS; {self.events} person events, "
            f"{self.inferences} inferred in {self.engine_calls} engine calls"
            + (" (interrupted)" if self.interrupted else "")
        )
        lines = [head, f"{'stage':<11}{'mean ms':>9}{'p50':>9}{'p90':>9}{'frames':>8}"]
        for name, s in self.stages.items():
            lines.append(f"{name:<11}{s.mean_ms:>9.2f}{s.p50_ms:>9.2f}{s.p90_ms:>9.2f}{s.count:>8}")
        outputs = [
            f"video {self.video}" if self.video else "",
            f"events {self.log}" if self.log else "",
            f"{self.explanations} explanations" if self.explanations else "",
        ]
        if any(outputs):
            lines.append("written: " + ", ".join(o for o in outputs if o))
        return "\n".join(lines)


def run(
    source: str,
    model: Path | str | Backend,
    *,
    detector: Path | str | Detector | None = None,
    boxes: Path | None = None,
    out: Path | None = None,
    events: Path | None = None,
    explain_dir: Path | None = None,
    settings: RunSettings = RunSettings(),
) -> RunSummary:
    """Tag every person of every frame of `source` (webcam index, file, URL or image folder) with emotions.

    `model`: checkpoint, ONNX or engine file (or a loaded Backend). Persons come from `boxes` (JSON/CSV) or a YOLO
    `detector` (default yolo11n.pt, fetched when missing unless `settings.download` is off; or a built Detector). Writes the annotated
    video to `out` and JSON Lines events to `events`; with `settings.explain_every` k, a Figure-1 image of every
    person of every k-th frame to `explain_dir` (checkpoints only).
    """
    s = settings
    for path, what in ((out, "output video"), (events, "events file")):
        if path is not None:
            output_file(path, what)  # before the detector and model load, not after them
    explain_into = _explain_request(model, s.explain_every, explain_dir)
    with ExitStack() as stack:
        # The source first: its problems (a missing file, a bad URL) are one line before the model loads, and a
        # camera connects while it loads.
        frames = stack.enter_context(
            open_source(str(source), settings=SourceSettings(connect_timeout_s=float(s.connect_timeout)))
        )
        if detector is None or isinstance(detector, (str, Path)):
            persons_of = open_detector(
                detector,
                boxes,
                device=s.device,
                download=s.download,
                detect_every=s.detect_every,
                detect_size=s.detect_size,
            )
        else:
            persons_of = detector  # a Detector built by the caller (a benchmark's, a custom tracker)
        backend = model if isinstance(model, Backend) else load_model(model, device=s.device)
        explainer = None if explain_into is None else _explainer(Path(model), s.explain_every, explain_into)
        timer = Timer()
        tagger = FrameTagger(backend, persons_of, every=s.every, smooth=s.smooth, timer=timer)
        stop = stack.enter_context(StopRequest())  # before the outputs, so that it outlives their closing
        stop.on_stop(frames.interrupt)  # a source waiting (for a frame, a camera, a reconnect) gives up at once
        sinks = stack.enter_context(_Sinks(backend.card, out, events, s.show, frames, timer))
        if s.progress:
            print(f"model: {backend.reason}\npersons: {tagger.detector.name}", flush=True)
        bar = stack.enter_context(_progress(frames.total, s.max_frames, s.progress, frames.name))
        ahead = s.overlap == "on" or (s.overlap == "auto" and str(backend.input_device).startswith("cuda"))
        detected = stack.enter_context(DetectedFrames(frames, tagger.detector, timer.record, ahead=ahead))
        done = _tag_frames(detected, tagger, sinks, stop, s.max_frames, bar, explainer)
        detected.close()
        if done.exhausted:
            _warn_unused(tagger.detector)
        # Decoder stopped and video finalised before the summary is decided, so that a signal meanwhile is in it.
        frames.close()
        sinks.close_video()
        summary = RunSummary(
            source=frames.name,
            frames=done.frames,
            events=done.events,
            inferences=tagger.inferences,
            engine_calls=tagger.engine_calls,
            seconds=done.seconds,
            fps=done.frames / done.seconds if done.seconds > 0 else 0.0,
            stages={name: StageStats.of(timer.seconds[name]) for name in STAGES if timer.seconds[name]},
            backend=backend.reason,
            detector=tagger.detector.name,
            interrupted=stop.requested,
            video=None if out is None else Path(out),
            log=None if events is None else Path(events),
            explanations=0 if explainer is None else explainer.written,
            settings={
                "every": s.every,
                "smooth": float(s.smooth),
                "crops": tagger.preprocess.crop_method,
                "detect_every": s.detect_every,
                "detect_size": s.detect_size,
                "overlap": ahead,
            },
        )
        sinks.finish(summary)
    if stop.requested and not summary.interrupted:  # a signal after the record, while the log closed
        summary = replace(summary, interrupted=True)
    if s.progress:
        print(summary.describe())
    return summary


@dataclass(frozen=True)
class _Done:
    """What the frame loop did."""

    frames: int
    events: int
    seconds: float
    exhausted: bool  # the source ended by itself (not stopped, not cut at max_frames, not the window closed)


def _tag_frames(
    detected: DetectedFrames,
    tagger: FrameTagger,
    sinks: _Sinks,
    stop: StopRequest,
    max_frames: int | None,
    bar: Any,
    explainer: FrameExplainer | None = None,
) -> _Done:
    """Tag and write frames (explaining every k-th one's persons) until the source ends, `max_frames` are done, a
    stop is requested (read after each frame: the current one is always finished) or the live window is closed."""
    processed = events = 0
    started = time.perf_counter()
    stream = iter(detected)
    while not stop.requested and (max_frames is None or processed < max_frames):
        found = next(stream, None)
        if found is None:
            return _Done(processed, events, time.perf_counter() - started, exhausted=not stop.requested)
        frame, persons = found[0], tagger.tag(*found)
        shown = sinks.write(frame, persons)
        if explainer is not None and explainer.due(processed) and len(persons):
            with tagger.timer("explain"):
                rgb = np.ascontiguousarray(frame.image[..., ::-1])
                explainer(frame.index, rgb, persons.boxes, persons.ids, frame.name or detected.frames.name)
        processed += 1
        events += len(persons)
        bar.update(1)
        if not shown:
            break  # the live window was closed: the run ends as a finished video does
    return _Done(processed, events, time.perf_counter() - started, exhausted=False)


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


def _explainer(model: Path, every: int, folder: Path) -> FrameExplainer:
    from emoedge.explain.every import FrameExplainer

    return FrameExplainer(model, every, folder)


def _warn_unused(detector: Detector) -> None:
    """Given persons no frame asked for (a boxes file's entries for an unreadable image, a misspelt file name, a
    frame past the end) are said once the whole source has been seen, instead of being silently left out."""
    unused = detector.unused()
    if unused:
        shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
        log.warning(
            "%s: %d entr%s matched no frame: %s", detector.name, len(unused), "y" if len(unused) == 1 else "ies", shown
        )


class FrameTagger:
    """Frame → its persons with the model's outputs: detection, the persons due for inference, their inputs, ONE
    engine call, reuse of recent results and smoothing. Holds the per-track state of one video.
    """

    def __init__(
        self,
        backend: Backend,
        detector: Detector,
        *,
        every: int = 1,
        smooth: float = SMOOTH,
        timer: Timer | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise EmoedgeError(f"every {every!r}: expected an integer >= 1 (re-infer each track every k-th frame)")
        if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not 0.0 <= smooth < 1.0:
            raise EmoedgeError(f"smooth {smooth!r}: expected a number in [0, 1) (0 turns smoothing off)")
        self.backend, self.detector = backend, detector
        self.preprocess = Preprocessor(backend.card, backend.input_device)
        self.cache, self.smoother = ResultCache(every), ScoreSmoother(float(smooth))
        self.timer = timer or Timer()
        self.inferences = self.engine_calls = 0

    def __call__(self, frame: Frame) -> Persons:
        with self.timer("detect"):
            persons = self.detector(frame)
        return self.tag(frame, persons)

    def tag(self, frame: Frame, persons: Persons) -> Persons:
        """The frame's `persons` (already found) with the model's outputs: prepare, ONE engine call, finish."""
        job = self.prepare(frame, persons)
        outputs = self.backend.empty_outputs()
        if job.inputs is not None:
            with self.timer("engine"):
                outputs = self.backend.infer(job.inputs.image, job.inputs.body)
            self.engine_calls += 1
        return self.finish(job, outputs)

    def prepare(self, frame: Frame, persons: Persons) -> TaggingJob:
        """The first half: which persons are due for the engine, and their inputs (None when none is due)."""
        due = self.cache.due(persons)
        inputs = None
        if due.any():
            with self.timer("preprocess"):
                inputs = self.preprocess(frame.image, persons.boxes[due])
            self.inferences += int(due.sum())
        return TaggingJob(persons, due, inputs)

    def finish(self, job: TaggingJob, outputs: dict[str, np.ndarray]) -> Persons:
        """The second half: the engine's `outputs` for the due persons merged with reused results, smoothed."""
        with self.timer("smooth"):
            return self.smoother(self.cache.merge(job.persons, job.due, outputs))


@dataclass(frozen=True, eq=False)
class TaggingJob:
    """A frame between `FrameTagger.prepare` and `finish`: its persons, those due (mask) and their engine inputs."""

    persons: Persons
    due: np.ndarray
    inputs: EngineInputs | None


class _Sinks:
    """The run's outputs: annotated video (opened at the first frame, sized by it, at the source's rate), event log,
    live window."""

    def __init__(
        self, card: ModelCard, out: Path | None, events: Path | None, show: bool, source: FrameSource, timer: Timer
    ) -> None:
        self.card, self.out, self.source, self.timer = card, out, source, timer
        self._stack = ExitStack()
        self.video: VideoSink | None = None
        try:
            self.log = self._stack.enter_context(EventLog(Path(events), card)) if events is not None else None
            self.window = self._stack.enter_context(Window()) if show else None
        except BaseException:
            self._stack.close()
            raise

    def write(self, frame: Frame, persons: Persons) -> bool:
        """Draw and write one frame's results; False once the live window asks to stop."""
        annotated = None
        if self.out is not None or self.window is not None:
            with self.timer("render"):
                annotated = draw(frame.image, persons, self.card)
        with self.timer("write"):
            if self.out is not None:
                if self.video is None:  # image folders do not say their size up front, nor live sources their rate
                    height, width = frame.image.shape[:2]
                    fps = self.source.fps or DEFAULT_FPS
                    self.video = self._stack.enter_context(VideoSink(Path(self.out), fps, (width, height)))
                self.video.write(annotated)
            if self.log is not None:
                self.log.write_frame(frame.index, frame.timestamp, persons)
            return self.window is None or self.window.show(annotated)

    def close_video(self) -> None:
        """Finalise the MP4 (its index is written on release); closing it again on exit does nothing."""
        if self.video is not None:
            self.video.close()

    def finish(self, summary: RunSummary) -> None:
        if self.log is not None:
            self.log.write(summary.to_record())

    def __enter__(self) -> _Sinks:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()  # releases the video writer (finalising the MP4) and closes the log, whatever happened


class Timer:
    """Wall-clock durations per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {name: [] for name in STAGES}

    def record(self, stage: str, seconds: float) -> None:
        self.seconds[stage].append(seconds)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage].append(time.perf_counter() - start)


class StopRequest:
    """While entered, SIGINT and SIGTERM ask the run to stop: the loop ends after the current frame, a waiting source
    is interrupted (`on_stop`), and the outputs are finalised with the summary record. Every signal does the same and
    none raises, so a second one (an impatient Ctrl-C) cannot cut the shutdown short; the stop takes one frame's work
    and the source's bounded wait for its decoder (`sources.STOP_WAIT_S`).

    Signal handlers can only be installed from the main thread; elsewhere (a run started on a worker thread) the
    process's own handling applies and the context managers still close every file.
    """

    def __init__(self) -> None:
        self.requested = False
        self._callbacks: list[Callable[[], None]] = []
        self._previous: dict[int, Any] = {}

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call `callback` (non-blocking) when a stop is requested."""
        self._callbacks.append(callback)
        if self.requested:
            callback()

    def _handle(self, _signum: int, _frame: object) -> None:
        self.requested = True
        for callback in self._callbacks:
            callback()

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _progress(total: int | None, max_frames: int | None, enabled: bool, name: str) -> Any:
    """A tqdm bar over the frames (a plain counter for live sources); a no-op object when disabled."""
    from tqdm import tqdm

    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    return tqdm(total=total, unit="frame", desc=Path(name).name or name, disable=not enabled, file=sys.stderr)
