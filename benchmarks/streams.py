"""Many cameras, one process: total frames/s of ONE `emoedge run` over 4 streams against FOUR single-stream
`emoedge run` processes running at the same time on the same cores.

Why: the multi-stream process holds one copy of the model and makes one engine call per tick for the persons of
all streams (the context branches batched over the streams' frames); four processes hold four copies and contend
for the cores. Each stream is a 640×480 mp4v clip with 2 moving persons and a boxes file (ids given: no detector, so
the figure is the emotion model's); random weights (speed does not depend on them); the PyTorch backend as `--device
cpu` picks it (BF16 channels_last where the CPU has BF16). Both ways run the real command line in child processes,
with an event log and no video. Throughput is read from each run's summary (the frame loop, start-up excluded):
multi = its total frames ÷ its loop time; four processes = their frames together ÷ the longest loop time of the four,
which, as their loops overlap, is if anything generous to them. Wall time with start-up is reported beside it.

    python benchmarks/streams.py [--models edge paper] [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emoedge.bench.clip import make_clip
from emoedge.bench.machine import describe, machine_line, wait_for_quiet
from emoedge.bench.models import random_checkpoint
from emoedge.fileio import atomic_write_text

STREAMS, PERSONS, SIZE = 4, 2, (640, 480)
TARGET = 1.5  # multi-stream total FPS ÷ four processes' total FPS (the issue's)
RESULTS = Path(__file__).parent / "results"


def emoedge(*args: str) -> list[str]:
    return [sys.executable, "-m", "emoedge", "run", *args, "--device", "cpu", "--quiet"]


def summary_of(events: Path) -> dict[str, Any]:
    return json.loads(events.read_text().splitlines()[-1])


def one_process(model: Path, clips: list[tuple[Path, Path]], frames: int, tmp: Path) -> dict[str, Any]:
    sources = [a for video, boxes in clips for a in ("--source", str(video), "--boxes", str(boxes))]
    events = tmp / "multi.jsonl"
    started = time.perf_counter()
    cmd = emoedge("--model", str(model), *sources, "--events", str(events), "--max-frames", str(frames))
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - started
    s = summary_of(events)
    return {"frames": s["frames"], "loop_s": s["seconds"], "fps": s["fps"], "wall_s": wall,
            "ticks": s["ticks"], "engine_calls": s["engine_calls"]}  # fmt: skip


def four_processes(
    model: Path, clips: list[tuple[Path, Path]], frames: int, tmp: Path, threads: int | None = None
) -> dict[str, Any]:
    """`threads`: OMP_NUM_THREADS of each process (None: torch's default, one per core)."""
    logs = [tmp / f"single{i}.jsonl" for i in range(len(clips))]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    started = time.perf_counter()
    commands = [
        emoedge(
            "--model",
            str(model),
            "--source",
            str(v),
            "--boxes",
            str(b),
            "--events",
            str(log),
            "--max-frames",
            str(frames),
        )
        for (v, b), log in zip(clips, logs)
    ]
    procs = [subprocess.Popen(cmd, env=env) for cmd in commands]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("a single-stream run failed")
    wall = time.perf_counter() - started
    summaries = [summary_of(log) for log in logs]
    total = sum(s["frames"] for s in summaries)
    longest = max(s["seconds"] for s in summaries)
    return {"frames": total, "loop_s": longest, "fps": total / longest, "wall_s": wall,
            "per_process_fps": [s["fps"] for s in summaries]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["edge", "paper"], choices=["edge", "paper"])
    parser.add_argument("--frames", type=int, default=60, help="frames per stream")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for a quiet CPU")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        clips = []
        for i in range(STREAMS):
            (tmp / f"clip{i}").mkdir()
            clips.append(make_clip(tmp / f"clip{i}", SIZE, PERSONS, frames=args.frames, seed=i))
        for name in args.models:
            checkpoint = random_checkpoint(tmp / f"{name}.pt", name)
            busy = wait_for_quiet(args.wait)
            multi = one_process(checkpoint, clips, args.frames, tmp)
            wait_for_quiet(args.wait)
            single = four_processes(checkpoint, clips, args.frames, tmp)
            wait_for_quiet(args.wait)
            lean = four_processes(checkpoint, clips, args.frames, tmp, threads=1)
            best = max(single, lean, key=lambda r: r["fps"])
            rows.append({"model": name, "busy_before": busy, "multi": multi, "four": single, "four_1_thread": lean,
                         "ratio": multi["fps"] / best["fps"]})  # fmt: skip
            print(f"{name}: one process {multi['fps']:.1f} FPS, four processes {single['fps']:.1f} FPS "
                  f"({lean['fps']:.1f} with 1 thread each), {rows[-1]['ratio']:.2f}× the better", flush=True)  # fmt: skip
    machine = describe()
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "streams_cpu.json", json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    atomic_write_text(RESULTS / "streams_cpu.md", markdown(machine, rows, args.frames))
    return 0


def markdown(machine: dict[str, Any], rows: list[dict[str, Any]], frames: int) -> str:
    lines = [
        "# Many cameras, one process — CPU",
        "",
        f"{machine_line(machine, ('torch',))}. {STREAMS} streams × {PERSONS} persons at {SIZE[0]}×{SIZE[1]}, {frames} frames each, "
        "boxes files (no detector), PyTorch backend (`--device cpu`), random weights, event log, no video. "
        "Loop FPS from each run's summary (start-up excluded); four processes: all their frames ÷ the longest loop.",
        "",
        "Four processes run twice: with torch's default threads (one per core each: 8 OpenMP threads on the cores) "
        "and with `OMP_NUM_THREADS=1` each; the ratio is against the better of the two.",
        "",
        f"| model | one process: total FPS | four processes: total FPS (default / 1 thread each) | ratio (target ≥ "
        f"{TARGET}) | reached | engine calls / ticks | wall s (one / four / four at 1 thread, with start-up) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        m, f, lean = r["multi"], r["four"], r["four_1_thread"]
        lines.append(
            f"| {r['model']} | {m['fps']:.1f} | {f['fps']:.1f} / {lean['fps']:.1f} | {r['ratio']:.2f}× | "
            f"{'yes' if r['ratio'] >= TARGET else 'no'} | {m['engine_calls']} / {m['ticks']} | "
            f"{m['wall_s']:.1f} / {f['wall_s']:.1f} / {lean['wall_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
