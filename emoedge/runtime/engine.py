"""`run` and `Engine`: emoedge's one run of 1..N streams — a single source is the case N = 1.

`Engine` checks everything that can be checked before any work (output paths, the detector's weights, an
explanation request), opens the sources (cameras connect while the model loads), the person finders, the model
(warmed: every shape the first ticks meet runs once before the first frame, so that no frame pays for a set-up) and
the outputs, and runs the frame loop (`emoedge.runtime.loop`) until every stream has ended, failed or stopped, or a
stop is requested. While it runs, streams can be added and removed (`add`, `remove`; `reload` applies an edited
streams file, as SIGHUP does for `emoedge run --sources FILE`) without disturbing the others; `views`, `ready`,
`beat` and `live_frame` tell observers (`run`'s `observers`: the HTTP service, the systemd notifier) how it is doing.
An engine that `serves` runs until it is stopped, even with no stream left.

A stream that ends, is cut at `max_frames` or fails (its boxes file, its decoder) leaves the loop with one line; the
others go on; the run fails (one line) only when every stream failed. A stop request (SIGINT, SIGTERM: see
`emoedge.signals`) interrupts every source, whose waits (for a frame, for a camera not up yet, between reconnect
attempts) end at once; the current tick is finished, the videos finalised and the summary written, whatever the run
is doing and however many signals come: each video holds exactly the frames its stream's summary counts.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

from emoedge.backends import Backend, load_model
from emoedge.errors import EmoedgeError
from emoedge.fileio import keep_outputs, output_file, output_folder
from emoedge.runtime.boxes import BoxesFile
from emoedge.runtime.finders import PersonFinder, YoloFinder
from emoedge.runtime.live import LiveFrame
from emoedge.runtime.loop import Loop, Stream, StreamView
from emoedge.runtime.outputs import RunOutputs, StreamOutputs
from emoedge.runtime.publish import MqttPublisher
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.sources import SourceSettings, open_source
from emoedge.runtime.streams import StreamSpec, load_streams, streams_from_args
from emoedge.runtime.summary import RunSummary, Timer
from emoedge.runtime.tagger import Tagger, TrackState
from emoedge.runtime.tracking import Tracker
from emoedge.runtime.weights import detector_weights
from emoedge.signals import reload_requests, stop_request

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")  # containers that take the mp4v video written
RELOAD_POLL_S = 0.5  # how often the reload thread looks whether the run has ended
# Persons per frame the model is warmed for before the first frame (no setting caps persons per frame): a crowded
# scene for one camera; the backend's own max_persons caps it, and a frame with more pays for its shape's set-up.
WARM_PERSONS = 16
Observer = Callable[
    ["Engine"], AbstractContextManager[Any]
]  # watches a loaded engine while it runs (HTTP service, systemd)


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
    sources_file: Path | None = None,
    settings: RunSettings = RunSettings(),
    observers: Sequence[Observer] = (),
    serves: bool = False,
) -> RunSummary:
    """Tag every person of every frame of every stream with emotions (see the module docstring and `Engine`).

    `source`: one source (webcam index, file, URL or image folder; `boxes` and `out` are its boxes file and video)
    or the streams (`StreamSpec`: id, source, boxes, out). `sources_file`: the streams file they came from, re-read
    on SIGHUP. `observers`: each called with the loaded engine, entered for as long as it runs. `serves`: run until
    stopped, even when every stream has ended (streams may be added). Returns the summary (`emoedge run` prints it);
    a run whose every stream failed raises its first reason as an EmoedgeError once its outputs are finalised.
    """
    engine = Engine(_specs(source, boxes, out), model, detector=detector, events=events, publish=publish,
                    explain_dir=explain_dir, settings=settings, serves=serves)  # fmt: skip
    with engine, ExitStack() as observing:
        for observer in observers:
            observing.enter_context(observer(engine))
        if sources_file is not None:
            engine.watch(sources_file)
        summary = engine.until_done()
    _fail_if_all_failed(summary)
    return summary


class Engine:
    """One run of 1..N streams (see the module docstring); use as a context manager, then `until_done`.

    `model`: checkpoint, ONNX or engine file, a served model's URL, or a loaded Backend. Streams without boxes find
    persons with `detector`: YOLO weights (default yolo11n.pt, fetched when missing unless `settings.download` is
    off) or any `PersonFinder`. `events`: one JSON Lines log for all streams; `publish`:
    mqtt[s]://[user:pass@]host[:port]/topic/{stream}, QoS 1, at most `settings.publish_queue` events held offline;
    with `settings.explain_every` K, a Figure-1 image of every person of every K-th frame of each stream into
    `explain_dir`/<stream>/ (checkpoints only).
    """

    def __init__(
        self,
        streams: Sequence[StreamSpec],
        model: Path | str | Backend,
        *,
        detector: Path | str | PersonFinder | None = None,
        events: Path | None = None,
        publish: str | None = None,
        explain_dir: Path | None = None,
        settings: RunSettings = RunSettings(),
        serves: bool = False,
    ) -> None:
        specs, s = list(streams), settings
        if not specs:
            raise EmoedgeError("no stream given")
        if detector is not None and not _is_finder(detector) and all(spec.boxes is not None for spec in specs):
            raise EmoedgeError("give either a detector (--detector WEIGHTS) or a boxes file (--boxes FILE), not both")
        for spec in specs:  # before anything loads or opens: one line within a second
            _check_output(spec)
        if events is not None:
            output_file(events, "events file")
        if not _is_finder(detector) and any(spec.boxes is None for spec in specs):  # before torch loads
            detector = _detector_for(specs, detector, s.download)  # type: ignore[arg-type]
        self.explain_into = _explain_request(model, s.explain_every, explain_dir)
        self.specs, self.model, self.detector, self.events, self.publish, self.settings = (
            specs, model, detector, events, publish, s
        )  # fmt: skip
        self._stack = ExitStack()
        self._ids = itertools.count(1)  # one id counter for every tracker: ids never collide across streams
        self._shared: PersonFinder | None = detector if _is_finder(detector) else None  # type: ignore[assignment]
        self._watched: Path | None = None
        self._building = threading.Lock()
        self.serves = serves
        self.sources = SourceSettings(connect_timeout_s=float(s.connect_timeout_s))

    def __enter__(self) -> Engine:
        s, stack = self.settings, self._stack
        try:
            self.publisher = (
                stack.enter_context(MqttPublisher(self.publish, queue=s.publish_queue)) if self.publish else None
            )
            opened = [self._open(spec) for spec in self.specs]  # sources connect while the model loads
            backend = (
                self.model
                if isinstance(self.model, Backend)
                else load_model(
                    self.model, device=s.device, precision=s.precision, cuda_graphs=s.cuda_graphs, compile=s.compile
                )
            )
            self.backend = backend
            warmed = self._warm(opened)
            self.explainer = (
                None if self.explain_into is None else _explainer(Path(self.model), s.explain_every, self.explain_into)
            )  # type: ignore[arg-type]
            self.timer = Timer()
            self.stop = stack.enter_context(stop_request())  # before the outputs, so that it outlives their closing
            run_outputs = RunOutputs(backend.card, stack, events=self.events, publisher=self.publisher)
            self.ahead = s.overlap == "on" or (s.overlap == "auto" and str(backend.input_device).startswith("cuda"))
            tagger = Tagger(backend, self.timer, model_timeout_s=float(s.model_timeout_s))
            self.loop = Loop(tagger, self.timer, run_outputs, self.stop,
                             max_frames=s.max_frames, ahead=self.ahead, progress=s.progress,
                             serves=self.serves)  # fmt: skip
            for stream in opened:
                self._join(stream)
        except BaseException:
            stack.close()
            raise
        if s.progress:
            names = ", ".join(f"{st.spec.id}={st.source.name}" for st in opened)
            print(f"model: {backend.reason}\nwarmed: {warmed}\npersons: {_persons_from(opened)}\nstreams: {names}",
                  flush=True)  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def until_done(self) -> RunSummary:
        """Run the loop; finalise every output, however the run ends; the summary (also the event log's last
        record, which names the outcome). A run that fails (the model gone past `--model-timeout-s`, an internal
        error) raises once its outputs are finalised and its summary written."""
        failure: Exception | None = None
        keep_outputs()  # the run's record from here on: a failure is written into it, not removed with it
        try:
            self.loop.until_done(self._stack)
        except Exception as exc:
            failure = exc
        seconds = self.loop.seconds
        for stream in self.loop.streams:  # decoders stopped and videos finalised before the summary is decided
            stream.source.close()
            stream.outputs.close()
        if self.publisher is not None:
            self.publisher.close()
        summary = self._summary(seconds, _outcome(failure, self.stop.requested))
        self.loop.outputs.finish(summary)
        if failure is not None:
            raise failure
        return summary

    # ------------------------------------------------------------------------------------ while it runs
    def add(self, spec: StreamSpec) -> Future:
        """Add a stream while the others run; checked here (one line: a taken id, an output path, a bad boxes
        file) and opened on the caller's thread (the frame loop never waits for a file to be read or a camera to be
        reached), joined between ticks. The future's result is the stream's id; its error says why it could not
        open (a missing file)."""
        if any(stream.spec.id == spec.id for stream in self.loop.active):
            raise EmoedgeError(f"stream id {spec.id!r} is already running")
        return self._queue_add(spec)

    def remove(self, ident: str) -> Future:
        """Stop one stream (its video finalised, its counts kept in the summary); the others go on."""

        def change(loop: Loop) -> str:
            stream = next((st for st in loop.active if st.spec.id == ident), None)
            if stream is None:
                raise EmoedgeError(f"no running stream {ident!r}")
            loop.drop(stream, "removed")
            return ident

        return self.loop.command(change)

    def reload(self, path: Path) -> list[Future]:
        """Apply a streams file: streams no longer in it removed, new ones added, changed ones (same id, other
        source, boxes or video) restarted; unchanged ones untouched."""
        wanted = {spec.id: spec for spec in load_streams(path)}
        running = {stream.spec.id: stream.spec for stream in self.loop.active}
        changes = [self.remove(i) for i in running if i not in wanted or wanted[i] != running[i]]
        changes += [self._queue_add(spec) for i, spec in wanted.items() if running.get(i) != spec]  # after removes
        return changes

    def watch(self, path: Path) -> None:
        """Re-read the streams file `path` on SIGHUP, on a thread of its own (`reload`); a bad file is one warning,
        the run goes on."""
        self._watched = Path(path)
        asked, done = threading.Event(), threading.Event()
        self._stack.callback(done.set)
        self._stack.enter_context(reload_requests(asked.set))  # a signal handler only sets a flag
        threading.Thread(target=self._reloads, args=(asked, done), name="emoedge-reload", daemon=True).start()

    def views(self) -> list[StreamView]:
        """How every stream of the run is doing now (never waits for the loop)."""
        return [stream.view() for stream in list(self.loop.streams)]

    @property
    def ready(self) -> bool:
        """The model is loaded and a first frame has been tagged."""
        return self.loop.ticks > 0

    @property
    def beat(self) -> float:
        """`time.monotonic()` of the frame loop's last turn: it stops when the loop is stuck."""
        return self.loop.beat

    @property
    def persons(self) -> str:
        """How the streams' persons are found, e.g. "YOLO yolo11n.pt + ByteTrack"."""
        return _persons_from(list(self.loop.streams))

    def live_frame(self, ident: str) -> LiveFrame | None:
        """The newest-frame slot of the stream `ident` (the latest to bear that id), or None if there is none."""
        found = [stream for stream in list(self.loop.streams) if stream.spec.id == ident]
        return found[-1].outputs.live if found else None

    # ------------------------------------------------------------------------------------ internals
    def _queue_add(self, spec: StreamSpec) -> Future:
        _check_output(spec)
        finder = BoxesFile(spec.boxes) if spec.boxes is not None else None  # a bad file is the request's error
        try:
            stream = self._open(spec, finder)
        except EmoedgeError as exc:
            failed: Future = Future()
            failed.set_exception(exc)
            return failed

        def change(loop: Loop) -> str:
            if any(running.spec.id == spec.id for running in loop.active):
                raise EmoedgeError(f"stream id {spec.id!r} is already running")
            return self._join(stream).spec.id

        joined = self.loop.command(change)
        joined.add_done_callback(lambda done: done.exception() is not None and stream.source.close())
        return joined

    def _reloads(self, asked: threading.Event, done: threading.Event) -> None:
        while not done.is_set():
            if asked.wait(RELOAD_POLL_S):
                asked.clear()
                self._reload_watched()

    def _reload_watched(self) -> None:
        assert self._watched is not None
        try:
            changes = self.reload(self._watched)
        except EmoedgeError as exc:
            log.warning("SIGHUP: %s; the streams stay as they are", exc)
            return
        log.warning("SIGHUP: %s re-read (%d change(s))", self._watched, len(changes))

    def _open(self, spec: StreamSpec, finder: PersonFinder | None = None) -> Stream:
        """A stream's source, finder (`finder`, its boxes file, or the run's detector), tracker and track state (its
        source opened: it starts decoding)."""
        s = self.settings
        source = self._stack.enter_context(open_source(spec.source, settings=self.sources))
        if finder is None:
            finder = BoxesFile(spec.boxes) if spec.boxes is not None else self._detector()
        tracker = Tracker(s.detect_every, self._ids, gives_ids=finder.gives_ids)
        return Stream(spec, source, finder, tracker, TrackState(s.every, s.smooth))

    def _detector(self) -> PersonFinder:
        """The run's one detector (its prediction batched over the streams), built at the first stream needing it."""
        with self._building:  # streams may be added from several threads at once
            if self._shared is None:
                s = self.settings
                weights = detector_weights(self.detector, download=s.download)  # type: ignore[arg-type]
                self._shared = YoloFinder(weights, device=s.device, download=s.download, size=s.detect_size)
            return self._shared

    def _warm(self, opened: list[Stream]) -> str:
        """Run every shape the first ticks will meet before the first frame (see `Backend.warm`): F up to the
        streams ticked together (as one model call takes them), N up to WARM_PERSONS per frame; then the detector
        once at the frame sizes its streams' sources report (a file's at once, a camera's once it is up: it connects
        while the model loads). What was warmed and how long it took, for the start-up line.

        Not warmed: a source whose size is unknown yet (an image folder, a camera still down), streams added later,
        more persons than that: their first frames pay for their set-up, as every frame did before. A model that
        fails here (a served model down at start) is one warning: its outage or error is the frame loop's.
        """
        backend = self.backend
        frames = min(len(opened), backend.max_frames or len(opened))
        try:
            calls, seconds = backend.warm(frames, WARM_PERSONS * frames)
        except EmoedgeError as exc:
            log.warning("warming the model up failed (%s); its first frames pay for its set-up", exc)
            calls, seconds = 0, 0.0
        said = f"{calls} model shape(s) in {seconds:.1f} s"
        warm = getattr(self._shared, "warm", None)  # an optional PersonFinder member (YoloFinder has it)
        sizes = [st.source.size for st in opened if st.finder is self._shared and st.source.size is not None]
        if warm is not None and sizes:
            seconds = warm(sizes)
            said += f"; the detector at {', '.join(dict.fromkeys(f'{w}x{h}' for w, h in sizes))} in {seconds:.1f} s"
        return said

    def _join(self, stream: Stream) -> Stream:
        s = self.settings
        outputs = StreamOutputs(stream.spec.id, self.backend.card, self.timer, video=stream.spec.out, show=s.show,
                                explainer=self.explainer)  # fmt: skip
        self._stack.callback(outputs.close)
        self.stop.on_stop(stream.source.interrupt)
        self.loop.join(stream, outputs)
        return stream

    def _summary(self, seconds: float, outcome: str) -> RunSummary:
        s, loop, publisher, streams = self.settings, self.loop, self.publisher, self.loop.streams
        frames = sum(st.written for st in streams)
        summary = RunSummary(
            streams=[st.stats() for st in streams],
            frames=frames,
            events=sum(st.events for st in streams),
            inferences=loop.tagger.inferences,
            ticks=loop.ticks,
            engine_calls=loop.tagger.engine_calls,
            seconds=seconds,
            fps=frames / seconds if seconds > 0 else 0.0,
            stages=self.timer.stats(),
            backend=self.backend.reason,
            detector=_persons_from(streams),
            interrupted=self.stop.requested,
            outcome=outcome,
            untagged_frames=loop.tagger.untagged,
            model_outages=len(loop.tagger.outages) + (loop.tagger.outage_s is not None),
            model_outage_s=sum(loop.tagger.outages) + (loop.tagger.outage_s or 0.0),
            published=0 if publisher is None else publisher.published,
            dropped=0 if publisher is None else publisher.dropped,
            undelivered=0 if publisher is None else publisher.undelivered,
            log=None if self.events is None else Path(self.events),
            explanations=sum(st.outputs.explanations for st in streams),
            settings={
                "every": s.every,
                "smooth": float(s.smooth),
                "crops": loop.tagger.preprocess.crop_method,
                "max_frames": s.max_frames,
                "detect_every": s.detect_every,
                "detect_size": s.detect_size,
                "overlap": self.ahead,
            },
        )
        return summary


def _outcome(failure: Exception | None, interrupted: bool) -> str:
    """How the run ended, for its summary: "completed", "interrupted" or "failed: <one line>"."""
    if failure is None:
        return "interrupted" if interrupted else "completed"
    reason = (
        str(failure) if isinstance(failure, EmoedgeError) else f"internal error: {type(failure).__name__}: {failure}"
    )
    return f"failed: {reason.splitlines()[0] if reason else type(failure).__name__}"


def _detector_for(specs: list[StreamSpec], detector: Path | str | None, download: bool) -> Path | str:
    """The detector's weights for the streams without a boxes file; when only some have one, its absence names them
    (a user who gave one --boxes for two sources is told which one lacks it, not only that YOLO is missing)."""
    try:
        return detector_weights(detector, download=download)
    except EmoedgeError as exc:
        without = [spec.id for spec in specs if spec.boxes is None]
        if detector is not None or len(without) == len(specs):
            raise
        raise EmoedgeError(
            f"stream(s) {', '.join(without)} have no boxes file (--boxes is matched to --source by order: give one per "
            f"source), so they need the detector, and {exc}"
        ) from None


def _check_output(spec: StreamSpec) -> None:
    if spec.out is not None:
        output_file(spec.out, f"output video of stream {spec.id}", VIDEO_SUFFIXES)


def _persons_from(streams: list[Stream]) -> str:
    """How each stream's persons are found, e.g. "YOLO yolo11n.pt, every 3 frames + ByteTrack"."""
    ways = []
    for stream in streams:
        tracked = not stream.finder.gives_ids
        every = f", every {stream.tracker.detect_every} frames" if stream.tracker.detect_every > 1 else ""
        ways.append(stream.finder.name + (f"{every} + ByteTrack" if tracked else ""))
    return ", ".join(dict.fromkeys(ways))


def _specs(source: str | Sequence[StreamSpec], boxes: Path | None, out: Path | None) -> list[StreamSpec]:
    if isinstance(source, (str, Path)):
        return streams_from_args([str(source)], [] if boxes is None else [Path(boxes)], out)
    if boxes is not None or out is not None:
        raise EmoedgeError("boxes and out belong to each stream (StreamSpec) when several are given")
    return list(source)


def _is_finder(detector: object) -> bool:
    """A `PersonFinder` built by the caller (not weights to load)."""
    return detector is not None and not isinstance(detector, (str, Path))


def _fail_if_all_failed(summary: RunSummary) -> None:
    """A run whose every stream failed is a failed command (exit 2): its first reason, as one line."""
    failed = [s for s in summary.streams if s.outcome.startswith("failed: ")]
    if failed and len(failed) == len(summary.streams):
        reason = failed[0].outcome.removeprefix("failed: ")
        raise EmoedgeError(reason if len(failed) == 1 else f"every stream failed; stream {failed[0].id}: {reason}")


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
