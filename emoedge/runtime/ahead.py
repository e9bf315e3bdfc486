"""Frames with their persons: detected in turn on the caller's thread, or one frame ahead on a thread of their own.

Why ahead: with the detector working on frame t+1 while the emotion model works on frame t, a frame costs the slower
of the two rather than their sum — where the two run on hardware of their own (a GPU: its kernels leave the CPU
free for the other thread). On a CPU both are OpenMP work on the same cores, and two thread teams on the same cores
stall each other at every barrier; so the run's `overlap="auto"` turns it on for models on a CUDA device only.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from emoedge.runtime.detect import Detector
from emoedge.runtime.persons import Persons
from emoedge.runtime.sources import Frame, FrameSource

WAIT_S = 0.5  # how often a blocked hand-over looks again (the other side may have stopped)
STOP_WAIT_S = 10.0  # at most one detection (a slow detector on a large frame) plus the source's own stop
_END = object()


class DetectedFrames:
    """Iterate once over (frame, persons); `record(stage, seconds)` receives the "decode" wait (for the next frame,
    or for the next detected frame when ahead) and each "detect" time. Use as a context manager: leaving it stops
    the detecting thread."""

    def __init__(
        self, frames: FrameSource, detector: Detector, record: Callable[[str, float], None], *, ahead: bool
    ) -> None:
        self.frames, self.detector, self.record, self.ahead = frames, detector, record, ahead
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)  # one frame ahead: the next, never a backlog
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[tuple[Frame, Persons]]:
        return self._ahead() if self.ahead else self._in_turn()

    def _in_turn(self) -> Iterator[tuple[Frame, Persons]]:
        stream = iter(self.frames)
        while True:
            waited = time.perf_counter()
            frame = next(stream, None)
            if frame is None:
                return
            self.record("decode", time.perf_counter() - waited)  # the wait for the decoding thread
            yield frame, self._detect(frame)

    def _ahead(self) -> Iterator[tuple[Frame, Persons]]:
        self._thread = threading.Thread(target=self._work, name="emoedge-detect", daemon=True)
        self._thread.start()
        while True:
            waited = time.perf_counter()
            item = self._take()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item  # the detector's error, raised where the run can report it
            self.record("decode", time.perf_counter() - waited)  # the wait for the next detected frame
            yield item

    def _detect(self, frame: Frame) -> Persons:
        started = time.perf_counter()
        persons = self.detector(frame)
        self.record("detect", time.perf_counter() - started)
        return persons

    def _work(self) -> None:
        """The detecting thread: frames in order, each with its persons, then the end (or the error)."""
        try:
            for frame in self.frames:
                if not self._give((frame, self._detect(frame))):
                    return
            self._give(_END)
        except BaseException as exc:  # handed over: nothing fails silently on this thread
            self._give(exc)

    def _give(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def _take(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=WAIT_S)
            except queue.Empty:
                if self._thread is not None and not self._thread.is_alive() and self._queue.empty():
                    return _END

    def __enter__(self) -> DetectedFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the detecting thread (once more does nothing): the source stops delivering, and the thread ends at
        its next hand-over, after the frame it is detecting, if any."""
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self.frames.interrupt()  # a thread waiting for a live source's next frame gives up at once
            self._thread.join(timeout=STOP_WAIT_S)
