"""Items of an iterator made one ahead on a thread of their own: the run's ticks found while the previous is tagged.

Why ahead: with the person finder working on tick t+1 while the emotion model works on tick t, a tick costs the
slower of the two rather than their sum — where the two run on hardware of their own (a GPU: its kernels leave the
CPU free for the other thread). On a CPU both are OpenMP work on the same cores, and two thread teams on the same
cores stall each other at every barrier; so the run's `overlap="auto"` turns it on for models on a CUDA device only.

On a GPU the thread queues its work on CUDA streams of its own (`own_streams`): on the legacy default stream, which
the tagging thread uses, the two threads' kernels would run one after the other, never side by side. Each item's
work is waited for before the item is handed over, so the consumer never reads what is still being computed.
"""

from __future__ import annotations

import contextlib
import queue
import sys
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
            with own_streams() as finish:
                for item in self.items:
                    finish()
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


def gpus_in_use() -> list[int]:
    """The CUDA devices on which torch already holds memory (the models', loaded before the loop starts); none when
    torch is not loaded or has not initialised CUDA. Only these: a stream on any other GPU would create a context
    there, hundreds of MB for nothing."""
    torch = sys.modules.get("torch")  # not loaded: nothing in the process runs torch's CUDA work
    if torch is None or not torch.cuda.is_initialized():
        return []
    return [i for i in range(torch.cuda.device_count()) if torch.cuda.memory_reserved(i) > 0]


@contextlib.contextmanager
def own_streams() -> Iterator[Callable[[], None]]:
    """This thread's CUDA work on new streams, one per GPU in use; yields the function that waits for that work.

    The current device's stream is made current last: selecting a stream also selects its device, so the thread's
    current device stays what it was. Without a GPU in use this does nothing, and so does the function.
    """
    devices = gpus_in_use()
    if not devices:
        yield lambda: None
        return
    import torch

    here = torch.cuda.current_device()
    streams = [torch.cuda.Stream(device) for device in sorted(devices, key=lambda device: device == here)]

    def finish() -> None:
        for stream in streams:
            stream.synchronize()

    with contextlib.ExitStack() as selected:
        for stream in streams:
            selected.enter_context(torch.cuda.stream(stream))
        yield finish
