"""How soon a camera's events come back after an outage: an RTSP camera (GStreamer's test server on 127.0.0.1, 15
FPS) killed for 3, 8 and 20 s while `emoedge run` tags it, and the seconds from the server being back (it prints
READY) to the run's next person event.

Why: a camera that flaps (a switch rebooting, a Wi-Fi blip) should cost about a second of events, not the longest
back-off. The run retries at the first back-off (0.25 s) for the first 30 s of an outage (`fast_s`), then backs off
to 8 s. Each event is read from the event log as the run writes it; the model is the sample model with random
weights and a boxes file (two persons on every frame), so the figure is the source's, not the model's.

    python benchmarks/reconnect.py [--outages 3 8 20]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emoedge.bench.clip import write_boxes_json
from emoedge.bench.machine import describe, machine_line
from emoedge.bench.models import random_checkpoint
from emoedge.fileio import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "tests" / "runtime" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's GStreamer bindings live
RESULTS = Path(__file__).parent / "results"
PORT = 18954
TARGET_S = 2.0  # the issue's: events back within 2 s of the camera for outages of 3-20 s


def start_camera(logs: Path) -> subprocess.Popen:
    camera = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(PORT), "/test"], stdout=subprocess.PIPE, text=True,
                              stderr=(logs / "rtsp.txt").open("a"))  # fmt: skip
    if camera.stdout is None or "READY" not in camera.stdout.readline():
        raise SystemExit("the RTSP server did not start")
    return camera


def lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def wait_for(condition: Any, limit: float) -> float:
    """Seconds until `condition` held (polled every 10 ms); SystemExit after `limit`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > limit:
            raise SystemExit("waited too long")
        time.sleep(0.01)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", type=float, nargs="+", default=[3, 8, 20], help="seconds the camera is down")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        model = random_checkpoint(tmp / "m.pt")
        boxes = write_boxes_json(tmp / "live.json", [[[40, 40, 120, 200], [180, 40, 260, 200]]] * 50_000)
        events = tmp / "events.jsonl"
        camera = start_camera(tmp)
        argv = [sys.executable, "-m", "emoedge", "run", "--source", f"rtsp://127.0.0.1:{PORT}/test", "--boxes",
                str(boxes), "--model", str(model), "--device", "cpu", "--events", str(events), "--quiet"]  # fmt: skip
        run = subprocess.Popen(argv, stderr=(tmp / "run.txt").open("w"))
        try:
            wait_for(lambda: lines(events) > 50, 120)
            for outage in args.outages:
                camera.send_signal(signal.SIGTERM)
                camera.wait(30)
                time.sleep(outage)
                before = lines(events)
                camera = start_camera(tmp)
                back = wait_for(lambda before=before: lines(events) > before, 120)
                rows.append({"outage_s": outage, "events_back_s": back})
                print(f"outage {outage:g} s: events back {back:.2f} s after the camera", flush=True)
                wait_for(lambda before=before: lines(events) > before + 30, 60)
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(60)
            camera.send_signal(signal.SIGTERM)
        summary = json.loads(events.read_text().splitlines()[-1])
    machine = describe()
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": machine, "rows": rows, "target_s": TARGET_S, "streams": summary["streams"]}
    atomic_write_text(RESULTS / "reconnect_cpu.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(RESULTS / "reconnect_cpu.md", markdown(machine, rows))
    print((RESULTS / "reconnect_cpu.md").read_text())
    return 0


def markdown(machine: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines_ = [
        "# How soon a camera's events come back after an outage",
        "",
        f"{machine_line(machine, ('torch',))}. GStreamer's RTSP test server (H.264, 15 FPS, a keyframe every second) "
        "killed with SIGTERM, restarted after the outage; seconds from its READY to the run's next person event "
        "(`emoedge run --source rtsp://… --boxes`, sample model, random weights). Back-off: 0.25 s for the first 30 s "
        "of an outage, then doubling to 8 s.",
        "",
        f"| outage (s) | events back after the camera (s) | target ≤ {TARGET_S:g} s |",
        "| --- | --- | --- |",
    ]
    for r in rows:
        reached = "yes" if r["events_back_s"] <= TARGET_S else "no"
        lines_.append(f"| {r['outage_s']:g} | {r['events_back_s']:.2f} | {reached} |")
    return "\n".join(lines_) + "\n"


if __name__ == "__main__":
    sys.exit(main())
