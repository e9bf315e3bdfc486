"""Video sources for the runtime: a webcam, a video file, an RTSP/HTTP stream or an image folder → Frames.

Decoding runs on a producer thread, so reading and decoding overlap with the consumer's inference. Files and
folders go through a bounded FIFO whose producer blocks: every frame arrives, in order. Live sources go through
a one-slot mailbox the producer overwrites: a slow consumer always gets the newest frame instead of a growing
lag, and the overwritten frames are counted in `dropped`. A live source is opened on the producer thread too: one
not up yet at start is waited for, and one that drops is reopened, with exponential back-off, each outage logged once
when it starts and once when it ends. Timeouts, back-off, buffering and reconnecting are a `SourceSettings`, passed
to `open_source`.

One stop flag per source (`interrupt`) ends every wait: the consumer's wait for a frame, the producer's wait for
room in the queue, for a camera and between reconnect attempts. The capture belongs to the producer thread (OpenCV
captures are not safe to release while another thread reads them); the thread releases it in `finally`, whichever
way it stops.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from emoedge import settings
from emoedge.errors import EmoedgeError
from emoedge.runtime.redact import redact_url, userinfo
from emoedge.settings import option

log = logging.getLogger(__name__)


LOG_LEVEL_ERROR = 2  # OpenCV's cv::utils::logging::LOG_LEVEL_ERROR


def _quiet_native_logs() -> None:
    """FFmpeg and OpenCV print a line or two of their own for every failed open: every reconnect attempt of an
    outage (hundreds per hour), and the URL in some. emoedge reports what matters once per outage. A user who sets
    OPENCV_FFMPEG_LOGLEVEL or OPENCV_LOG_LEVEL (to debug a camera) keeps their choice."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    if "OPENCV_LOG_LEVEL" not in os.environ:
        api = getattr(cv2.utils, "logging", None)  # OpenCV 5; OpenCV 4.x (JetPack's 4.10) has cv2.setLogLevel
        if api is not None:
            api.setLogLevel(api.LOG_LEVEL_ERROR)
        else:
            cv2.setLogLevel(LOG_LEVEL_ERROR)


_quiet_native_logs()

# FFmpeg probes a stream for 5 s of data by default (analyzeduration) before it hands over the first frame: measured
# against GStreamer's RTSP server, an open took 2.0 s, and 0.7 s with 0.5 s of probing (the codec and size come with
# the stream's description, SDP, or its first keyframe). Every reconnect pays it. A user's own
# OPENCV_FFMPEG_CAPTURE_OPTIONS (read by OpenCV at every open) is kept as it is.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "analyzeduration;500000")

# OpenCV's FFmpeg reader tries a silent stream twice before a read fails, each try with the whole read timeout
# (measured with a paused RTSP server: 5 s -> lost after 10.0 s, 2.5 s -> 5.0 s, 1 s -> 2.0 s): it gets half.
READ_ATTEMPTS = 2
STOP_WAIT_S = 0.5  # how long an interrupted source waits for its decoding thread to let go of the capture
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class SourceSettings:
    """How sources connect, buffer and reconnect: one validated value handed to every source, built in code or from
    a mapping with `emoedge.settings.from_dict(SourceSettings, {...})`."""

    open_timeout_s: float = option(  # an unreachable camera fails fast, not after OpenCV's 30 s
        5.0, "seconds one connect attempt may take", low=0, low_open=True
    )
    read_timeout_s: float = option(
        5.0, "seconds a stream may be silent before it counts as dropped", low=0, low_open=True
    )
    backoff_s: tuple[float, float] = option(
        (0.25, 8.0), "first and longest seconds between reconnect attempts", low=0, low_open=True
    )
    file_queue: int = option(4, "decoded frames buffered ahead for files and folders", low=1)
    reconnect: bool = option(True, "live sources reopen when they drop (off: the stream's end is the source's end)")
    max_outage_s: float | None = option(
        None, "seconds without a stream before giving up (None: never)", low=0, low_open=True
    )
    # Edge boxes and cameras are often powered together, and an IP camera streams some 20-30 s after power-on.
    connect_timeout_s: float = option(
        30.0, "seconds a live source not up yet at start is waited for, like an outage (0: fail at once)", low=0
    )
    # A camera that flaps (a switch rebooting, a Wi-Fi blip) is back within seconds: retried at the first back-off
    # for this long it costs about a second, and only a long outage backs off to the longest wait.
    fast_s: float = option(
        30.0, "seconds of an outage retried at the first back-off before the waits grow to the longest", low=0
    )

    def __post_init__(self) -> None:
        settings.validate(self)
        if self.backoff_s[0] > self.backoff_s[1]:
            raise EmoedgeError(f"backoff_s {self.backoff_s!r}: expected first <= longest")


@dataclass(frozen=True, eq=False)
class Frame:
    """One delivered frame. `eq=False`: frames compare by identity, never element-wise on the image."""

    index: int  # 0-based: the frame's place in a file or stream; an image's place in its folder's name order
    timestamp: float  # seconds: wall clock (time.time()) at decoding for live sources; otherwise the position
    # in the video, index / fps, or the plain index where there is no frame rate (image folders)
    image: np.ndarray  # H×W×3 uint8, BGR
    name: str | None = None  # the image's file name, for image folders


# What a producer hands over: the image, its wall-clock time (live sources), its index if not the next one, its name.
Decoded = tuple[np.ndarray, "float | None", "int | None", "str | None"]
Put = Callable[..., bool]  # put(image, wall, index=None, name=None) -> False once the consumer has stopped


class _Mailbox:
    """Hands decoded images from the producer thread to the consumer: a bounded FIFO, or one overwritten slot."""

    def __init__(self, capacity: int, keep_latest: bool) -> None:
        self._items: collections.deque[Decoded] = collections.deque()
        self._capacity = capacity
        self._keep_latest = keep_latest
        self._cond = threading.Condition(threading.RLock())  # reentrant: `close` may run in a signal handler
        self._closed = False
        self._error: BaseException | None = None
        self.dropped = 0

    def __len__(self) -> int:
        """Items waiting for the consumer; lets a test see that a FIFO's producer is blocked."""
        with self._cond:
            return len(self._items)

    def ready(self) -> bool:
        """Whether `get` would return at once: an item waits, or the producer has finished."""
        with self._cond:
            return bool(self._items) or self._closed

    def put(self, item: Decoded) -> bool:
        """Queue an item (blocking while a FIFO is full); False once closed, telling the producer to stop."""
        with self._cond:
            while not self._keep_latest and len(self._items) >= self._capacity and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self) -> Decoded | None:
        """The next item; None once finished and drained; the producer's error, if it failed."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait(0.5)  # a timed wait keeps Ctrl-C responsive in the consuming thread
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            if self._error is not None:
                raise self._error
            return None

    def finish(self, error: BaseException | None) -> None:
        """Producer side: no more items; the consumer drains what is queued, then sees the end or `error`."""
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        """Consumer side: discard what is queued and release a producer blocked in `put`."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class FrameSource(ABC):
    """Frames of one source, decoded on a background thread. Use as a context manager; iterate once."""

    name: str  # printable, credentials redacted
    live: bool
    fps: float | None  # None where unknown; a live source's are known once it is up (by its first frame)
    size: tuple[int, int] | None  # (width, height)
    total: int | None  # frames (files) or images (folders); None for live sources
    state: str  # "connecting" (live, not up yet), "live", "reconnecting", "reading" (files, folders), "ended"
    reconnects: int  # outages of a live source so far

    def __init__(
        self,
        name: str,
        *,
        live: bool,
        fps: float | None,
        size: tuple[int, int] | None,
        total: int | None,
        settings: SourceSettings,
    ) -> None:
        self.name = redact_url(name)
        self.live = live
        self.fps = fps
        self.size = size
        self.total = total
        self.settings = settings
        self.state = "connecting" if live else "reading"  # read by observers (a live page, health) on any thread
        self.reconnects = 0
        self._mailbox = _Mailbox(1 if live else settings.file_queue, keep_latest=live)
        self._stop = threading.Event()
        self._delivered = 0
        self._thread = threading.Thread(target=self._run, name=f"emoedge-source {self.name}", daemon=True)

    @property
    def dropped(self) -> int:
        """Live frames overwritten before the consumer took them (always 0 for files and folders)."""
        return self._mailbox.dropped

    def ready(self) -> bool:
        """Whether the next frame (or the end) can be taken without waiting: a multi-stream run takes a live
        source's frame only when one has arrived, so that one slow camera never holds the others."""
        return self._mailbox.ready()

    @abstractmethod
    def _produce(self, put: Put) -> None:
        """Decode frames and `put` each (image, wall-clock time or None[, index, name]) until the end or until `put`
        is False."""

    def _release(self) -> None:  # noqa: B027 - an optional hook: a folder source holds no decoder
        """Free the decoder; called on the producer thread when it stops."""

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._produce(lambda image, wall, index=None, name=None: self._mailbox.put((image, wall, index, name)))
        except BaseException as exc:  # handed to the consumer, who raises it: nothing fails silently here
            error = exc
        finally:
            self._release()
            self.state = "ended"
            self._mailbox.finish(error)

    def _start(self) -> FrameSource:
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Frame]:
        try:
            while (item := self._mailbox.get()) is not None:
                image, wall, given, name = item
                index = self._delivered if given is None else given
                self._delivered += 1
                if wall is not None:
                    timestamp = wall
                else:
                    timestamp = index / self.fps if self.fps else float(index)
                yield Frame(index=index, timestamp=timestamp, image=image, name=name)
            if self._delivered == 0 and not self.live and not self._stop.is_set():
                raise EmoedgeError(f"{self.name}: no frame could be decoded")
        finally:
            self.close()

    def interrupt(self) -> None:
        """Stop waiting: the iterator ends at once, and the producer at its next step (whatever it waits for: room in
        the queue, the next reconnect attempt, a camera not up yet). Safe in a signal handler: it sets flags and
        takes the mailbox's lock only for an instant (reentrant, so the interrupted thread may hold it)."""
        self._stop.set()
        self._mailbox.close()

    def close(self) -> None:
        """Stop the producer and wait (bounded) for it to release the capture; safe to call more than once.

        After an interrupt (or when leaving the `with` block on an error) the wait is short: a producer blocked
        inside FFmpeg (opening a camera that does not answer) cannot be woken, and the run must not hang on it;
        `emoedge.cli` then ends the process without waiting for that thread (see `cli.main`).
        """
        interrupted = self._stop.is_set()
        self.interrupt()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            limit = STOP_WAIT_S if interrupted else self.settings.open_timeout_s + self.settings.read_timeout_s + 1.0
            self._thread.join(limit)

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:  # leaving on an error or a Ctrl-C: no reason to wait for a decoder stuck in FFmpeg
            self.interrupt()
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, live={self.live}, fps={self.fps}, size={self.size})"


class _CaptureSource(FrameSource):
    """A cv2.VideoCapture: a file (every frame, opened by the caller), or a webcam/stream (newest frame).

    A live source is opened with `opener` on the producer thread, so that a camera that does not answer never holds
    the consumer (nor its signal handling) inside FFmpeg: one not up yet is waited for with the reconnect back-off
    for `settings.connect_timeout_s`, and one that drops is reopened the same way (if `settings.reconnect`).
    `unavailable` says why a live source cannot be opened, for the error once the wait is over.
    """

    def __init__(
        self,
        name: str,
        capture: cv2.VideoCapture | None,
        *,
        live: bool,
        settings: SourceSettings,
        opener: Callable[[], cv2.VideoCapture | None] | None = None,
        unavailable: str = "",
    ) -> None:
        super().__init__(name, live=live, fps=None, size=None, total=None, settings=settings)
        self._opener = opener
        self._unavailable = unavailable
        self._capture: cv2.VideoCapture | None = capture
        if capture is not None:
            self._describe(capture)

    def _describe(self, capture: cv2.VideoCapture) -> None:
        """Frame rate, size and (files) frame count, as far as the capture knows them."""
        fps = capture.get(cv2.CAP_PROP_FPS)
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        # Streams report nonsense when they do not know (0, or the 90 kHz RTP clock): keep plausible values.
        self.fps = fps if 0 < fps <= 1000 else None
        self.size = (width, height) if width > 0 and height > 0 else None
        self.total = count if count > 0 and not self.live else None

    def _produce(self, put: Put) -> None:
        if self._capture is None and not self._connect():
            return
        if self.live:
            self.state = "live"
        while not self._stop.is_set():
            ok, image = self._capture.read()
            if ok:
                if not put(image, time.time() if self.live else None):
                    return
                continue
            if self._opener is None or not self.settings.reconnect:
                if self.live:
                    log.warning("%s: stream ended", self.name)
                return
            if not self._reopen():
                return

    def _connect(self) -> bool:
        """Open a live source: at once, or (not up yet: appliances boot with their cameras) with the reconnect
        back-off for `connect_timeout_s`, like an outage. False if stopped meanwhile."""
        self._capture = self._opener()
        if self._capture is None:
            limit = self.settings.connect_timeout_s
            if limit == 0:
                raise EmoedgeError(f"{self._unavailable} (timeout {self.settings.open_timeout_s:g} s)")
            log.warning("%s: not up yet; waiting up to %g s for it (connect_timeout_s)", self.name, limit)
            waited = self._retry(
                limit, lambda _: f"{self._unavailable}; no answer within {limit:g} s (connect_timeout_s)"
            )
            if waited is None:
                return False
            log.warning("%s: up after %.1f s", self.name, waited)
        self._describe(self._capture)
        return True

    def _reopen(self) -> bool:
        """Reopen a dropped stream with the back-off; False if stopped meanwhile; an error after max_outage_s."""
        self._release()
        self.state, self.reconnects = "reconnecting", self.reconnects + 1
        first, longest = self.settings.backoff_s
        limit = self.settings.max_outage_s
        log.warning("%s: stream lost; reconnecting (back-off %g s to %g s)", self.name, first, longest)
        outage = self._retry(
            limit, lambda waited: f"{self.name}: stream lost for {waited:.1f} s (max_outage_s={limit:g}); giving up"
        )
        if outage is None:
            return False
        log.warning("%s: stream back after a %.1f s outage", self.name, outage)
        self.state = "live"
        return True

    def _retry(self, limit: float | None, give_up: Callable[[float], str]) -> float | None:
        """Open again and again, waiting `backoff_s[0]` between attempts for the first `fast_s` seconds, then
        doubling up to `backoff_s[1]`, until the source opens (the seconds it took), the stop flag is set (None), or
        `limit` seconds pass (EmoedgeError `give_up(seconds)`)."""
        started, delay = time.monotonic(), self.settings.backoff_s[0]
        while not self._stop.wait(delay):
            self._capture = self._opener()
            waited = time.monotonic() - started
            if self._capture is not None:
                return waited
            if limit is not None and waited >= limit:
                raise EmoedgeError(give_up(waited))
            if waited >= self.settings.fast_s:
                delay = min(delay * 2, self.settings.backoff_s[1])
            if limit is not None:
                delay = min(delay, max(limit - waited, 0.0))
        return None

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class _FolderSource(FrameSource):
    """Images of a folder in name order, each frame indexed by its place in that order and named by its file, so
    that boxes given by index or by file name stay on their image; an unreadable image is skipped with a warning."""

    def __init__(self, folder: Path, paths: list[Path], settings: SourceSettings) -> None:
        super().__init__(str(folder), live=False, fps=None, size=None, total=len(paths), settings=settings)
        self._paths = paths

    def _produce(self, put: Put) -> None:
        for index, path in enumerate(self._paths):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("%s: skipping unreadable image (frame %d: its boxes, if any, are not used)", path, index)
                continue
            if not put(image, None, index, path.name):
                return


def _open_capture(target: str | int, stream: SourceSettings | None = None) -> cv2.VideoCapture | None:
    """An opened capture, or None; `stream` gives the timeouts of a network stream. Files and streams use FFmpeg
    only: other backends OpenCV would fall back to log the file name in their warnings, credentials included.

    Streams decode on one thread: FFmpeg's frame threading holds back one frame per extra thread, which is
    latency on a live stream and, when a stream stalls, one read timeout per held frame before the outage shows.
    Webcams open through V4L2 on Linux: OpenCV's automatic choice also probes its Orbbec depth-camera backend,
    which prints a native error line of its own for every index that is not a camera.
    """
    if isinstance(target, int):
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY)
    elif stream is not None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _milliseconds(stream.open_timeout_s),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, _milliseconds(stream.read_timeout_s / READ_ATTEMPTS),
            cv2.CAP_PROP_N_THREADS, 1,
        ]  # fmt: skip
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    else:
        capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
    if capture.isOpened():
        return capture
    capture.release()
    return None


def _milliseconds(seconds: float) -> int:
    """OpenCV's timeouts are whole milliseconds, and 0 means its default (30 s): round up to at least 1."""
    return max(1, math.ceil(seconds * 1000))


def _open_stream(url: str, settings: SourceSettings) -> FrameSource:
    name = redact_url(url)
    raw = [c for c in "/?#" if c in (userinfo(url) or "")]
    if raw:  # FFmpeg, like every URL parser, would end the host at it and try to reach a host named after the user
        encoded = ", ".join(f"{c} as %{ord(c):02X}" for c in raw)
        raise EmoedgeError(f"bad stream URL {name}: the user name or password holds {' '.join(raw)}; write {encoded}")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise EmoedgeError(f"bad stream URL {name}: the port must be a number from 0 to 65535") from None
    if not parts.hostname:
        raise EmoedgeError(f"bad stream URL {name}: expected scheme://host[:port]/path")

    return _CaptureSource(
        name,
        None,
        live=True,
        settings=settings,
        opener=functools.partial(_open_capture, url, settings),
        unavailable=f"cannot open stream {name}: unreachable, refused or not a video stream",
    )


def _open_folder(folder: Path, settings: SourceSettings) -> FrameSource:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise EmoedgeError(f"image folder {folder} is empty: expected image files ({suffixes})")
    return _FolderSource(folder, paths, settings)


def open_source(spec: str, *, settings: SourceSettings | None = None) -> FrameSource:
    """Open a webcam index ("0"), a video file, an rtsp:// / http(s):// URL or an image folder (name order).

    Files and folders are checked here; live sources (webcam, URL) are opened on the decoding thread, waited for up
    to `settings.connect_timeout_s` when not up yet, and reconnect when they drop unless `settings.reconnect` is
    False (then the stream's end is the source's end). Their problems (never up, or down for longer than
    `settings.max_outage_s`; None: never give up) are EmoedgeErrors raised by the iterator; a wait may overrun its
    limit by up to `open_timeout_s` (the last attempt). A stream counts as dropped when a read fails or stays silent
    for `read_timeout_s`. Decoding starts at once; a spec of digits is a webcam index, never a file name. `settings`
    defaults to `SourceSettings()`.
    """
    settings = SourceSettings() if settings is None else settings
    spec = str(spec).strip()
    if spec.isdigit():
        index = int(spec)
        return _CaptureSource(
            f"webcam {index}",
            None,
            live=True,
            settings=settings,
            opener=functools.partial(_open_capture, index),
            unavailable=f"cannot open webcam {index}: no such camera, or it is in use",
        )._start()
    scheme, sep, _ = spec.partition("://")
    if sep:
        if scheme.lower() not in STREAM_SCHEMES:
            expected = ", ".join(f"{s}://" for s in STREAM_SCHEMES)
            raise EmoedgeError(f"bad stream URL {redact_url(spec)}: unsupported scheme, expected {expected}")
        return _open_stream(spec, settings)._start()
    path = Path(spec).expanduser()
    if path.is_dir():
        return _open_folder(path, settings)._start()
    if not path.is_file():
        raise EmoedgeError(f"video file not found: {path}")
    capture = _open_capture(str(path))
    if capture is None:
        raise EmoedgeError(f"cannot read video {path}: not a video format FFmpeg can decode")
    return _CaptureSource(str(path), capture, live=False, settings=settings)._start()
