"""Items of an iterator made one ahead on a thread of their own: the run's ticks found while the previous is tagged.

Why ahead: with the person finder working on tick t+1 while the emotion model works on tick t, a tick costs the
slower of the two rather than their sum — where the two run on hardware of their own (a GPU: its kernels leave the
CPU free for the other thread). On a CPU both are OpenMP work on the same cores, and two thread teams on the same
cores stall each other at every barrier; so the run's `overlap="auto"` turns it on for models on a CUDA device only.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
WAIT_S = 0.5  # how often a blocked hand-over looks again (the other side may have stopped)
STOP_WAIT_S = 10.0  # at most one tick's finding (a slow detector on large frames) plus the sources' own stop
_END = object()


class Ahead(Generic[T]):
    """Iterate once over `items`, produced on a thread one ahead; `wait(seconds)` receives each wait for the next
    item. Leaving the context (or `close`) calls `interrupt` (which must make the producer's waits end) and stops
    the thread at its next hand-over. An error raised by the producer is raised here, where the run reports it."""

    def __init__(self, items: Iterable[T], wait: Callable[[float], None], interrupt: Callable[[], None]) -> None:
        self.items, self.wait, self.interrupt = items, wait, interrupt
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)  # one ahead: the next, never a backlog
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._work, name="emoedge-ahead", daemon=True)

    def __iter__(self) -> Iterator[T]:
        self._thread.start()
        while True:
            waited = time.perf_counter()
            item = self._take()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            self.wait(time.perf_counter() - waited)
            yield item

    def _work(self) -> None:
        try:
            for item in self.items:
                if not self._give(item):
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
                if not self._thread.is_alive() and self._queue.empty():
                    return _END

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the producing thread (once more does nothing)."""
        self._closed.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self.interrupt()
            self._thread.join(timeout=STOP_WAIT_S)
