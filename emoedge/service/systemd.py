"""systemd's notify protocol for `emoedge run` under a `Type=notify` unit (deploy/emoedge.service): READY=1 once the
model is loaded and the streams opened, WATCHDOG=1 only while the frame loop turns, STOPPING=1 when a stop begins.

Why the watchdog pings come from the loop's own heartbeat (`Engine.beat`) and not from a timer alone: a loop stuck in
a driver call, a hung decoder or a deadlock stops the pings, and systemd restarts the service (`WatchdogSec`,
`Restart=on-failure`), where a timer thread would go on pinging a process that does nothing. The protocol is one
datagram per message to the socket in $NOTIFY_SOCKET (sd_notify(3)); without it (not under systemd) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emoedge.runtime.engine import Engine

log = logging.getLogger(__name__)


class Notifier:
    """Messages to systemd through $NOTIFY_SOCKET (`from_environment`: None when not run by systemd)."""

    def __init__(self, address: str, watchdog_s: float | None) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address  # "@": the abstract namespace
        self.watchdog_s = watchdog_s
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @classmethod
    def from_environment(cls) -> Notifier | None:
        address = os.environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())  # the watchdog is meant for this process, not a parent
        return cls(address, int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None)

    def send(self, message: str) -> None:
        try:
            self._socket.sendto(message.encode(), self.address)
        except OSError as exc:  # systemd gone (a shutdown): the run goes on
            log.debug("sd_notify %s: %s", message, exc)

    @contextmanager
    def attached(self, engine: Engine) -> Iterator[Notifier]:
        """Notify for `engine` while entered (an observer of `emoedge.runtime.engine.run`)."""
        stopped = threading.Event()
        engine.stop.on_stop(lambda: self.send("STOPPING=1"))
        self.send(f"READY=1\nSTATUS=tagging {len(engine.views())} stream(s)\nMAINPID={os.getpid()}")
        thread = threading.Thread(target=self._ping, args=(engine, stopped), name="emoedge-watchdog", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stopped.set()
            thread.join()
            self.send("STOPPING=1")
            self._socket.close()

    def _ping(self, engine: Engine, stopped: threading.Event) -> None:
        """WATCHDOG=1 every half watchdog period while the loop has turned within that half period."""
        if self.watchdog_s is None:
            return
        every = self.watchdog_s / 2
        while not stopped.wait(every):
            if time.monotonic() - engine.beat < every:
                self.send("WATCHDOG=1")
