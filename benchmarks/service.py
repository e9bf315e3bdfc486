"""What serving costs the run: FPS of a 3-stream `emoedge run` without `--http`, with it and no client, and with it and
one client watching every stream (what the live page does: one MJPEG connection per tile), same session.

Why: the service must not cost the run its frames. With no client the loop does nothing more (views are made when
asked, frames are not drawn); a watcher makes the loop draw each watched frame, and its own thread encodes it. Each
stream is a 640×480 mp4v clip with 2 persons and a boxes file (ids given: no detector); the edge model with random
weights on the PyTorch backend (`--device cpu`); an event log, no video. FPS is each stream's frames ÷ its own time
in the loop (from the summary), summed over the streams: a served run goes on after its streams end (streams may be
added), so the run's own total would count that idle time. Modes alternate, rounds repeat; the median is reported.

    python benchmarks/service.py [--frames 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from emoedge.bench.clip import make_clip
from emoedge.bench.machine import describe, machine_line, wait_for_quiet
from emoedge.bench.models import random_checkpoint
from emoedge.fileio import atomic_write_text

STREAMS, PERSONS, SIZE, MODEL = 3, 2, (640, 480), "edge"
TARGETS = {"no client": 0.95, "one client": 0.85}  # FPS with --http ÷ FPS without (the issue's)
MODES = ("off", "no client", "one client")
RESULTS = Path(__file__).parent / "results"
PORT = 18931


def run_once(mode: str, model: Path, sources: Path, frames: int, tmp: Path) -> dict[str, Any]:
    events = tmp / f"events-{mode.replace(' ', '-')}.jsonl"
    events.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "emoedge", "run", "--sources", str(sources), "--model", str(model), "--device",
            "cpu", "--quiet", "--events", str(events), "--max-frames", str(frames)]  # fmt: skip
    served = mode != "off"
    if served:
        argv += ["--http", str(PORT)]
    process = subprocess.Popen(argv)
    watched = {"bytes": 0}
    if served:
        url = f"http://127.0.0.1:{PORT}"
        _wait(lambda: _status(url + "/readyz") == 200, process)
        if mode == "one client":
            for i in range(STREAMS):
                threading.Thread(target=_watch, args=(f"{url}/streams/s{i}.mjpg", watched), daemon=True).start()
        _wait(lambda: all(s["state"] == "stopped" for s in _streams(url)), process)
        process.send_signal(signal.SIGTERM)
    if process.wait() not in (0, 130):
        raise SystemExit(f"emoedge run ({mode}) failed")
    summary = json.loads(events.read_text().splitlines()[-1])
    per_stream = [s["fps"] for s in summary["streams"]]
    return {"mode": mode, "fps": sum(per_stream), "per_stream_fps": per_stream, "frames": summary["frames"],
            "watched_mib": watched["bytes"] / 2**20}  # fmt: skip


def _watch(url: str, watched: dict[str, int]) -> None:
    try:
        with requests.get(url, stream=True, timeout=60) as answer:
            for chunk in answer.iter_content(65536):
                watched["bytes"] += len(chunk)
    except requests.RequestException:
        pass  # the run ended


def _streams(url: str) -> list[dict[str, Any]]:
    return requests.get(url + "/api/streams", timeout=30).json()["streams"]


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=10).status_code
    except requests.ConnectionError:
        return 0


def _wait(condition: Any, process: subprocess.Popen) -> None:
    while not condition():
        if process.poll() is not None:
            raise SystemExit("emoedge run ended early")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for a quiet CPU")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        model = random_checkpoint(tmp / "model.pt", MODEL)
        streams = []
        for i in range(STREAMS):
            (tmp / f"s{i}").mkdir()
            clip, boxes = make_clip(tmp / f"s{i}", SIZE, PERSONS, frames=args.frames, seed=i)
            streams.append({"id": f"s{i}", "source": str(clip), "boxes": str(boxes)})
        sources = tmp / "streams.yaml"
        sources.write_text(yaml.safe_dump({"streams": streams}))
        busy = wait_for_quiet(args.wait)
        for round_ in range(args.rounds):
            for mode in MODES:
                runs.append({"round": round_, **run_once(mode, model, sources, args.frames, tmp)})
                print(f"round {round_} {mode}: {runs[-1]['fps']:.2f} FPS", flush=True)
    median = {mode: statistics.median(r["fps"] for r in runs if r["mode"] == mode) for mode in MODES}
    machine = describe()
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": machine, "busy_before": busy, "frames": args.frames, "median_fps": median, "runs": runs}
    atomic_write_text(RESULTS / "service_cpu.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(RESULTS / "service_cpu.md", markdown(machine, runs, median, args.frames))
    print((RESULTS / "service_cpu.md").read_text())
    return 0


def markdown(machine: dict[str, Any], runs: list[dict[str, Any]], median: dict[str, float], frames: int) -> str:
    lines = [
        "# What serving costs the run — CPU",
        "",
        f"{machine_line(machine, ('torch',))}. `emoedge run --sources` of {STREAMS} streams × {PERSONS} persons at "
        f"{SIZE[0]}×{SIZE[1]}, {frames} frames each (`--max-frames`), boxes files (no detector), the {MODEL} model with "
        "random weights, PyTorch (`--device cpu`), event log, no video. FPS: each stream's frames ÷ its time in the "
        'loop, summed. "one client": an MJPEG connection to every stream (what the live page opens), reading all it '
        "is sent, from the benchmark's process on the same machine. Modes alternate within each round. "
        f"CPU cores this ran on: {len(os.sched_getaffinity(0))}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
        "",
        "| mode | FPS per round | median FPS | ÷ off | target | reached |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode in MODES:
        rounds = ", ".join(f"{r['fps']:.2f}" for r in runs if r["mode"] == mode)
        ratio = median[mode] / median["off"]
        target = TARGETS.get(mode)
        reached = "" if target is None else ("yes" if ratio >= target else "no")
        lines.append(f"| {mode} | {rounds} | {median[mode]:.2f} | {ratio:.2f}× | {target or ''} | {reached} |")
    watched = [r["watched_mib"] for r in runs if r["mode"] == "one client"]
    lines += ["", f"MJPEG sent to the client per run: {', '.join(f'{w:.1f}' for w in watched)} MiB."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
