"""SIGINT and SIGTERM, owned in one place: Ctrl-C and a service manager's stop mean the same to every command.

Outside a run, a signal interrupts the command where it is (importing, loading a model, training) with a
KeyboardInterrupt. While a run holds a `stop_request()`, a signal only asks it to stop: the run finishes the frame it
is on, stops its sources and finalises its outputs, and no second signal (an impatient Ctrl-C) can cut that short.
The handler is found through `signal.getsignal`, so the command's owner (installed by `emoedge.cli.main`) and a run
started from Python without it behave alike, with no module state: a run installs an owner of its own for its
duration when none is there. Signal handlers can only be installed from the main thread; elsewhere the process's own
handling applies and the run's context managers still close every file.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A run's stop request: `requested` once a signal (or the run itself, e.g. a closed window) asked for it;
    callbacks registered with `on_stop` run at once then (they must not block: a source's `interrupt`)."""

    def __init__(self) -> None:
        self.requested = False
        self._callbacks: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)
        if self.requested:
            callback()

    def request(self) -> None:
        self.requested = True
        for callback in list(self._callbacks):
            callback()


class Signals:
    """The process's handler of SIGINT and SIGTERM (see the module docstring).

    `received` counts every signal. A KeyboardInterrupt is raised only when none is being handled already, so a
    clean-up an earlier signal started (closing files, saving a checkpoint) is never cut short; once the command is
    over (`settle`) signals only count, and the exit status says one came.
    """

    def __init__(self) -> None:
        self.received = 0
        self._settled = False
        self._previous: dict[int, Any] = {}
        self._stops: list[StopRequest] = []

    def __call__(self, _signum: int, _frame: object) -> None:
        self.received += 1
        if self._stops:
            self._stops[-1].request()
        elif not self._settled and not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            raise KeyboardInterrupt

    def install(self) -> Signals:
        """Take SIGINT and SIGTERM (from the main thread only; elsewhere the process's own handling stays)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self) for signum in SIGNALS}
        return self

    def settle(self) -> None:
        """The command is over: from now on signals only count."""
        self._settled = True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    @contextmanager
    def stopping(self) -> Iterator[StopRequest]:
        """While entered, signals set the yielded stop request instead of raising."""
        stop = StopRequest()
        self._stops.append(stop)
        try:
            yield stop
        finally:
            self._stops.remove(stop)


@contextmanager
def stop_request() -> Iterator[StopRequest]:
    """A stop request that SIGINT and SIGTERM set while it is entered, through the installed owner or one of its own."""
    main = threading.current_thread() is threading.main_thread()
    owner = signal.getsignal(signal.SIGINT) if main else None
    if isinstance(owner, Signals):
        with owner.stopping() as stop:
            yield stop
        return
    own = Signals().install()
    try:
        with own.stopping() as stop:
            yield stop
    finally:
        own.restore()


@contextmanager
def reload_requests(callback: Callable[[], None]) -> Iterator[None]:
    """While entered, SIGHUP (a service manager's reload: `systemctl reload`) calls `callback`, which must only
    queue work (it runs in the signal handler); from the main thread only, like every handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, lambda _signum, _frame: callback())
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
