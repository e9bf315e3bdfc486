"""A served run for the service tests: an engine of streams given by boxes files, its HTTP server on a free port, and
a client for it (`Served.get/post/delete`); and a watcher of a stream's progress that measures its longest pause."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from ports import free_port  # type: ignore[import-not-found]

from emoedge.runtime.engine import Engine
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.streams import StreamSpec
from emoedge.service.server import HttpService
from emoedge.service.settings import Address

QUIET = RunSettings(progress=False, device="cpu")
TIMEOUT_S = 30


@dataclass
class Served:
    """A running engine and its server; requests go to `url` (with the token, when one is set)."""

    engine: Engine
    service: HttpService
    summary: Any = None
    error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.service.url.rstrip("/")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, timeout=TIMEOUT_S, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def streams(self, **kwargs: Any) -> dict[str, dict]:
        answer = self.get("/api/streams", **kwargs)
        assert answer.status_code == 200, answer.text
        return {s["id"]: s for s in answer.json()["streams"]}


@contextmanager
def served(specs: list[StreamSpec], model: Any, *, token: str | None = None, **engine: Any) -> Iterator[Served]:
    """Serve an engine of `specs` on 127.0.0.1 while entered (its loop on a thread of its own); stopped on leaving."""
    with HttpService(Address("127.0.0.1", free_port(), token)) as service:
        run = Engine(specs, model, serves=True, settings=engine.pop("settings", QUIET), **engine)
        with run, service.attached(run):
            result = Served(run, service)

            def loop() -> None:
                try:
                    result.summary = run.until_done()
                except BaseException as exc:
                    result.error = exc

            thread = threading.Thread(target=loop, daemon=True)
            thread.start()
            try:
                yield result
            finally:
                run.stop.request()
                thread.join(TIMEOUT_S)
    if result.error is not None:
        raise result.error


@dataclass
class Progress:
    """Polls `frames()` every few milliseconds on a thread: `longest_pause_s` between two increases."""

    frames: Any
    longest_pause_s: float = 0.0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Progress:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        last, since = self.frames(), time.monotonic()
        while not self._stop.wait(0.02):
            now, count = time.monotonic(), self.frames()
            self.samples += 1
            if count > last:
                last, since = count, now
            self.longest_pause_s = max(self.longest_pause_s, now - since)


def clips(folder: Path, names: list[str], frames: int) -> dict[str, tuple[Path, Path]]:
    """(clip, boxes file) per name: two figures walking over a textured background."""
    from emoedge.bench.clip import write_boxes_json, write_clip

    made = {}
    for i, name in enumerate(names):
        clip = folder / f"{name}.mp4"
        made[name] = (clip, write_boxes_json(folder / f"{name}.json", write_clip(clip, frames, 2, seed=i)))
    return made
