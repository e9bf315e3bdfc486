"""Chaos: a served run of three RTSP cameras and a video file, its model on a Triton server (`emoedge serve`), its
events to an MQTT broker (mosquitto), while a seeded schedule kills and restarts the cameras, the broker and the
model's server for `EMOEDGE_CHAOS_S` seconds (default 180); then SIGTERM.

Checks: exit 130 and one summary naming the outcome; every camera and the model tagging again after every outage;
nothing published lost (what the broker acknowledged reached the subscriber; nothing dropped within the queue
bound); no traceback; no file descriptor or thread left behind by the outages. The longer run with recovery figures
and memory is `benchmarks/chaos.py`, which calls `chaos` below. Runs in the serving set (`make test SET=serve`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cli_helpers import Background, count_lines, emoedge_command  # type: ignore[import-not-found]
from ports import free_ports  # type: ignore[import-not-found]
from runtime.mqtt_broker import Mosquitto, Subscriber  # type: ignore[import-not-found]
from runtime.rtsp_helpers import gstreamer_missing, start_server  # type: ignore[import-not-found]
from runtime.runtime_media import read_events  # type: ignore[import-not-found]
from serve.serve_helpers import kill, serving  # type: ignore[import-not-found]

from emoedge.bench.clip import write_boxes_json, write_clip
from emoedge.bench.models import random_checkpoint
from emoedge.export.onnx import export_onnx

CAMERAS = 3
DOWN_S = (3.0, 8.0)  # how long a component stays down
GAP_S = (4.0, 10.0)  # between one component's return and the next outage
BACK_TIMEOUT_S = 60.0  # a component not tagging again within this after its return fails the run
DELIVERY_S = 60.0  # how long the subscriber may take to receive the broker's backlog after the run


@dataclass
class Report:
    """What a chaos run saw: per outage, the component, its seconds down and the seconds to tag again after its
    return; the run's file descriptors, threads and memory at the start and at the end."""

    outages: list[dict[str, Any]] = field(default_factory=list)
    start: dict[str, int] = field(default_factory=dict)
    end: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    received: int = 0


def chaos(folder: Path, seconds: float, seed: int = 7) -> Report:
    """Run the schedule (see the module docstring) for `seconds`; the report. Fails the test on a broken promise."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    rtsp = free_ports(CAMERAS)
    http, *triton = free_ports(4)
    model = export_onnx(random_checkpoint(folder / "m.pt"), folder / "m.onnx").path
    live = write_boxes_json(folder / "live.json", [[[40, 40, 120, 200], [180, 40, 260, 200]]] * 100_000)
    clip = folder / "file.mp4"
    clip_boxes = write_boxes_json(folder / "file.json", write_clip(clip, 600, 2, (320, 240)))
    streams = [{"id": f"cam{i}", "source": f"rtsp://127.0.0.1:{port}/test", "boxes": str(live)}
               for i, port in enumerate(rtsp)]  # fmt: skip
    streams.append({"id": "file", "source": str(clip), "boxes": str(clip_boxes)})
    (folder / "streams.yaml").write_text(yaml.safe_dump({"streams": streams}))
    (folder / "broker").mkdir()
    with contextlib.ExitStack() as cleanup:  # whatever happens, every server this started is stopped
        broker = Mosquitto(folder / "broker").start()
        cleanup.callback(lambda: broker.stop())
        subscriber = Subscriber(broker.port, "emo/#")
        cleanup.callback(subscriber.client.loop_stop)
        started: list[Background] = []  # every camera server started: stopping a stopped one does nothing
        cleanup.callback(lambda: [camera.stop() for camera in started])

        def camera(i: int) -> Background:
            started.append(start_server(rtsp[i], folder / f"rtsp{i}"))
            return started[-1]

        cameras = {f"cam{i}": camera(i) for i in range(CAMERAS)}
        cleanup.callback(_stop_extra_servers)
        return _schedule(folder, seconds, seed, model, broker, subscriber, cameras, camera, http, triton)


def _schedule(folder: Path, seconds: float, seed: int, model: Path, broker: Mosquitto, subscriber: Subscriber,
              cameras: dict[str, Background], camera: Callable[[int], Background], http: int,
              triton: list[int]) -> Report:  # fmt: skip
    """The run under chaos (see `chaos`), its servers already up."""
    events, report = folder / "events.jsonl", Report()
    api = f"http://127.0.0.1:{http}/api/streams"
    with serving(model, folder / "triton0", ports=triton) as server:
        argv = emoedge_command("run", "--sources", str(folder / "streams.yaml"), "--model", server.grpc,
                               "--events", str(events), "--publish", f"mqtt://127.0.0.1:{broker.port}/emo/{{stream}}",
                               "--http", str(http), "--quiet")  # fmt: skip
        run = Background(argv, folder / "run")
        try:
            frames = lambda: {s["id"]: s["frames"] for s in requests.get(api, timeout=30).json()["streams"]}  # noqa: E731
            run.wait_until(lambda: _ready(http) and all(n > 10 for i, n in frames().items() if i != "file"),
                           "every camera tagged", 180)  # fmt: skip
            report.start = _resources(run.process.pid)
            rng, deadline, generation, schedule = random.Random(seed), time.monotonic() + seconds, 0, []
            while time.monotonic() < deadline:
                if not schedule:  # each component once per round, in a seeded order
                    schedule = [*cameras, "broker", "model"]
                    rng.shuffle(schedule)
                time.sleep(rng.uniform(*GAP_S))
                component, down = schedule.pop(), rng.uniform(*DOWN_S)
                if component in cameras:
                    cameras[component].stop()
                    time.sleep(down)
                    seen = frames()[component]
                    cameras[component] = camera(int(component[3:]))
                    back = _until(lambda c=component, n=seen: frames()[c] > n, run)
                elif component == "broker":
                    broker.stop()
                    time.sleep(down)
                    heard = len(subscriber.messages)
                    broker.start()
                    back = _until(lambda n=heard: len(subscriber.messages) > n, run)
                else:
                    kill(server)
                    time.sleep(down)
                    generation += 1
                    lines = count_lines(events)
                    server = stack_server(model, folder / f"triton{generation}", triton)
                    back = _until(lambda n=lines: count_lines(events) > n, run)
                report.outages.append({"component": component, "down_s": round(down, 2), "back_s": round(back, 2)})
            report.end = _resources(run.process.pid)
            run.send(signal.SIGTERM)
            assert run.wait(60) == 130, run.stderr[-3000:]
            stderr = run.stderr
        finally:
            run.stop()
    _, report.summary = read_events(events)
    distinct = lambda: len({json.dumps(json.loads(p), sort_keys=True) for _, p in subscriber.messages})  # noqa: E731
    deadline = time.monotonic() + DELIVERY_S  # what the broker acknowledged reaches the subscriber in the end
    while distinct() < report.summary["published"] and time.monotonic() < deadline:
        time.sleep(0.2)
    report.received = distinct()
    assert "Traceback" not in stderr, stderr[-3000:]
    return report


_EXTRA: list[Any] = []  # the restarted model servers (context managers entered by stack_server)


def stack_server(model: Path, folder: Path, ports: list[int]) -> Any:
    """A model server started again on the same ports; stopped at the end of the chaos run."""
    manager = serving(model, folder, ports=ports)
    server = manager.__enter__()
    _EXTRA.append(manager)
    return server


def _stop_extra_servers() -> None:
    while _EXTRA:
        _EXTRA.pop().__exit__(None, None, None)


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    except requests.ConnectionError:
        return False


def _until(condition: Callable[[], bool], run: Background) -> float:
    """Seconds until `condition` holds after a component's return (the test fails past BACK_TIMEOUT_S)."""
    start = time.monotonic()
    run.wait_until(condition, "tagging again after an outage", BACK_TIMEOUT_S)
    return time.monotonic() - start


def _resources(pid: int) -> dict[str, int]:
    """Open file descriptors, threads and resident memory (KiB) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": len(os.listdir(f"/proc/{pid}/task")), "rss_kib": rss}


def test_chaos(tmp_path: Path) -> None:
    seconds = float(os.environ.get("EMOEDGE_CHAOS_S", "180"))
    report = chaos(tmp_path, seconds)
    print(json.dumps({"outages": report.outages, "start": report.start, "end": report.end}, indent=1))
    summary = report.summary
    assert summary["outcome"] == "interrupted"
    assert {o["component"] for o in report.outages} == {"cam0", "cam1", "cam2", "broker", "model"}
    assert summary["dropped"] == 0 and summary["undelivered"] == 0
    assert report.received >= summary["published"] > 0  # what the broker acknowledged reached the subscriber
    assert summary["model_outages"] == sum(o["component"] == "model" for o in report.outages)
    cams = {s["id"]: s for s in summary["streams"]}
    assert all(cams[f"cam{i}"]["outcome"] == "stopped" for i in range(CAMERAS))
    assert report.end["fds"] <= report.start["fds"] + 4, (report.start, report.end)  # nothing left open per outage
    assert report.end["threads"] <= report.start["threads"] + 4, (report.start, report.end)
