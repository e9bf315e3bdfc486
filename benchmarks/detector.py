"""End to end with the person detector: what `--detect-every` and `--detect-size` buy, against boxes given.

Why: on a CPU the YOLO detector costs more than the emotion model (about 100 ms a 640×480 frame for YOLO11n on 2
cores), so running it on every frame caps the whole pipeline. This script runs the real pipeline (`run`: decode,
detect + ByteTrack, preprocess, engine, smoothing, drawing, MP4 and JSON Lines) on a 640×480 clip with 4 moving
persons, the paper model's fastest CPU path (PyTorch, BF16 channels_last where the CPU has BF16), random weights,
and persons found five ways: boxes given (no detector), and a YOLO11n detector every frame (in turn, and one frame
ahead on its own thread: `--overlap on`), every 3rd frame, and every 3rd frame at 320 px. The detector is built from Ultralytics' model YAML (its `.pt` weights cannot be
downloaded here): it runs for its real cost on every frame it is due, but an untrained head finds nothing, so the
boxes it hands ByteTrack are the clip's true ones for that frame (without ids). Between detections the tracker
carries the tracks, exactly as with trained weights.

    python benchmarks/detector.py [--model paper] [--frames 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends import load_model
from emoedge.bench.clip import make_clip
from emoedge.bench.machine import describe, machine_line, wait_for_quiet
from emoedge.bench.models import random_checkpoint
from emoedge.bench.run import CostOnlyFinder
from emoedge.fileio import atomic_write_text
from emoedge.runtime.engine import run
from emoedge.runtime.settings import RunSettings

SIZE, PERSONS = (640, 480), 4
WAYS = (("boxes given", None, None, "off"), ("detector every frame", 1, None, "off"),
        ("detector every frame, one frame ahead (--overlap on)", 1, None, "on"),
        ("detector every 3rd frame", 3, None, "off"), ("detector every 3rd frame at 320 px", 3, 320, "off"))  # fmt: skip
TARGET = 0.75  # FPS with --detect-every 3 ÷ FPS with boxes given (the issue's)
RESULTS = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="paper", choices=["paper", "edge", "sample"])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a quiet CPU")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        video, boxes_file = make_clip(tmp, SIZE, PERSONS, frames=args.frames)
        truth = {f["index"]: np.asarray(f["boxes"], np.float32) for f in json.loads(boxes_file.read_text())["frames"]}
        checkpoint = random_checkpoint(tmp / f"{args.model}.pt", args.model)
        backend = load_model(checkpoint, device="cpu")
        run(str(video), backend, boxes=boxes_file, settings=RunSettings(progress=False, max_frames=3))  # warm-up
        for label, every, size, overlap in WAYS:
            settings = RunSettings(progress=False, smooth=0.0, overlap=overlap, detect_every=every or 1)
            busy = wait_for_quiet(args.wait)
            if every is None:
                summary = run(str(video), backend, boxes=boxes_file, out=tmp / "o.mp4", settings=settings)
            else:
                detector = CostOnlyFinder("yolo11n.yaml", truth, "cpu", size=size)
                summary = run(str(video), backend, detector=detector, out=tmp / "o.mp4", settings=settings)
            stages = {name: round(s.mean_ms, 2) for name, s in summary.stages.items()}
            rows.append({"way": label, "detect_every": every, "detect_size": size, "overlap": overlap, "fps": summary.fps,
                         "frames": summary.frames, "events": summary.events, "stages_mean_ms": stages,
                         "busy_before": busy})  # fmt: skip
            print(f"{label}: {summary.fps:.1f} FPS, {summary.events} person events", flush=True)
    given = rows[0]["fps"]
    for row in rows:
        row["vs_boxes_given"] = row["fps"] / given
    machine = describe()
    RESULTS.mkdir(exist_ok=True)
    payload = {"machine": machine, "backend": backend.reason, "model": args.model, "size": SIZE, "persons": PERSONS,
               "rows": rows}  # fmt: skip
    atomic_write_text(RESULTS / "detector_cpu.json", json.dumps(payload, indent=2) + "\n")
    atomic_write_text(RESULTS / "detector_cpu.md", markdown(machine, backend.reason, args.model, rows))
    return 0


def markdown(machine: dict[str, Any], backend: str, model: str, rows: list[dict[str, Any]]) -> str:
    lines = [
        "# End to end with the person detector — CPU",
        "",
        f"{machine_line(machine, ('torch', 'ultralytics'))}. {model} model, {backend}; {SIZE[0]}×{SIZE[1]} clip, {PERSONS} moving persons, annotated MP4 and event log "
        "written. Detector: YOLO11n built from its YAML, run on every due frame for its cost; the boxes it hands "
        "ByteTrack are the clip's true ones (an untrained head finds nothing).",
        "",
        f"| persons from | FPS | × boxes given (target ≥ {TARGET} at every 3rd) | detect ms (mean over frames) | "
        "engine ms | person events |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        s = r["stages_mean_ms"]
        lines.append(
            f"| {r['way']} | {r['fps']:.1f} | {r['vs_boxes_given']:.2f}× | {s.get('detect', 0):.1f} | "
            f"{s.get('engine', 0):.1f} | {r['events']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
