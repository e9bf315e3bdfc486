"""systemd's notify protocol on a socket of the test's own (as systemd's would be): READY=1 once loaded, WATCHDOG=1
every half period while the frame loop turns and none while it is stuck, STOPPING=1 when the run stops — from the
library and from `emoedge run` started as systemd starts it."""

from __future__ import annotations

import itertools
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import Background, emoedge_command, wait_until  # type: ignore[import-not-found]
from service.service_helpers import QUIET, clips  # type: ignore[import-not-found]

from emoedge.bench.models import random_checkpoint
from emoedge.runtime.engine import Engine
from emoedge.runtime.finders import Found
from emoedge.runtime.streams import StreamSpec
from emoedge.service.systemd import Notifier

WATCHDOG_S = 0.4


class _Valve:
    """A person finder (two fixed persons) whose `find` blocks while the valve is closed: a stuck frame loop."""

    name, gives_ids = "valve", False

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()

    def find(self, frames: list) -> list[Found]:
        self.open.wait()
        boxes = np.array([[10, 10, 60, 100], [80, 10, 130, 100]], np.float32)
        return [Found(boxes, np.ones(2, np.float32)) for _ in frames]

    def unused(self) -> list[str]:
        return []


@contextmanager
def _listening(folder: Path) -> Iterator[tuple[str, list[tuple[float, str]]]]:
    """A datagram socket like systemd's notify socket; yields its path and the (time, message) list it receives."""
    path = str(folder / "notify.sock")
    received: list[tuple[float, str]] = []
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.1)
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                received.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                continue

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        yield path, received
    finally:
        done.set()
        thread.join()
        sock.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("systemd")
    return {"model": random_checkpoint(folder / "m.pt"), **clips(folder, ["a"], 3000)}


def test_watchdog_pings_only_while_the_loop_turns(media, tmp_path: Path) -> None:
    valve = _Valve()
    with _listening(tmp_path) as (path, received):
        engine = Engine([StreamSpec("a", str(media["a"][0]))], media["model"], detector=valve, serves=True,
                        settings=QUIET)  # fmt: skip
        with engine, Notifier(path, WATCHDOG_S).attached(engine):
            thread = threading.Thread(target=engine.until_done, daemon=True)
            thread.start()
            wait_until(lambda: _count(received, "WATCHDOG=1") >= 3, "watchdog pings while frames flow", 30)
            valve.open.clear()  # the loop sticks in the finder
            time.sleep(WATCHDOG_S)  # the ping under way may still be sent
            stuck = len(received)
            time.sleep(4 * WATCHDOG_S)
            silent = received[stuck:]
            valve.open.set()
            wait_until(lambda: _count(received[stuck:], "WATCHDOG=1") >= 2, "pings again once unstuck", 30)
            engine.stop.request()
            thread.join(30)
    messages = [m for _, m in received]
    assert messages[0].startswith("READY=1\n") and "MAINPID=" in messages[0]
    assert not [m for m in silent if m == "WATCHDOG=1"], silent  # no ping while stuck for 4 half-periods
    assert "STOPPING=1" in messages[-1]
    pings = [t for t, m in received if m == "WATCHDOG=1"]
    assert max(b - a for a, b in itertools.pairwise(pings)) > 3 * WATCHDOG_S  # the gap systemd would act on


def test_emoedge_run_under_systemd(media, tmp_path: Path) -> None:
    """`emoedge run` with $NOTIFY_SOCKET and $WATCHDOG_USEC as systemd sets them: READY=1, pings, STOPPING=1."""
    with _listening(tmp_path) as (path, received):
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
        argv = emoedge_command("run", "--source", str(media["a"][0]), "--boxes", str(media["a"][1]), "--model",
                               str(media["model"]), "--device", "cpu", "--quiet")  # fmt: skip
        with Background(argv, tmp_path, env=env) as run:
            wait_until(lambda: _count(received, "WATCHDOG=1") >= 2, "watchdog pings", 120, process=run)
            run.send(signal.SIGTERM)
            assert run.wait(60) == 130
    messages = [m for _, m in received]
    assert messages[0].startswith("READY=1") and messages[-1] == "STOPPING=1"


def _count(received: list[tuple[float, str]], message: str) -> int:
    return sum(m == message for _, m in received)
