"""A stream's newest annotated frame, for whoever watches it live (the service's page), at no cost when nobody does.

Why a one-slot "newest" and not a queue: a watcher slower than the stream (a browser on a slow link) must never slow
the run nor fall behind it; it gets the newest frame whenever it is ready for one, and frames in between are skipped.
The frame loop only draws (when no video or window asked for it already) and hands the image over; encoding it for
the network is the watcher's work, on the watcher's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


class LiveFrame:
    """The newest annotated frame of one stream while at least one watcher is in `watch()`; `close` ends waits."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._image: np.ndarray | None = None
        self._number = 0  # frames put so far: a watcher waits for a number past the one it showed
        self._watchers = 0
        self.closed = False

    @property
    def watched(self) -> bool:
        return self._watchers > 0

    @contextmanager
    def watch(self) -> Iterator[LiveFrame]:
        """While entered the frame loop keeps this stream's newest frame here."""
        with self._changed:
            self._watchers += 1
        try:
            yield self
        finally:
            with self._changed:
                self._watchers -= 1
                if not self._watchers:
                    self._image = None  # nobody looks: hold no frame

    def put(self, image: np.ndarray) -> None:
        """The frame loop's newest annotated frame (BGR); replaces the one before, read or not."""
        with self._changed:
            self._image, self._number = image, self._number + 1
            self._changed.notify_all()

    def next(self, after: int, timeout: float) -> tuple[int, np.ndarray | None]:
        """The newest frame once it is newer than frame number `after` (None after `timeout` s, or once closed)."""
        with self._changed:
            self._changed.wait_for(lambda: self.closed or (self._number > after and self._image is not None), timeout)
            if self.closed or self._number <= after:
                return after, None
            return self._number, self._image

    def close(self) -> None:
        """The stream has left the run: every watcher's wait ends."""
        with self._changed:
            self.closed = True
            self._image = None
            self._changed.notify_all()
