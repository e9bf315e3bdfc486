"""End-to-end runtime speed: `emoedge run` on a video with given boxes, against one person at a time.

Why: SPEC §8–9 promise one engine call per frame (the context branches once, the N body crops as one batch), where
the popular reimplementation calls its model once per person, recomputing the context each time (3N backbone passes
instead of 2 + N). This script runs the real pipeline (`emoedge.runtime.engine.run`: decoding, boxes, preprocessing,
engine, smoothing, drawing, MP4 and JSON Lines writing) on synthetic clips with 1, 4 and 8 persons per frame at
640×480 and 1280×720, for the paper model (ResNet50 ×3 at 224) and the edge variant (train/edge.yaml backbones),
random weights (speed does not depend on them), through ONNX Runtime FP32 and PyTorch (BF16 channels_last where the
CPU has BF16, else FP32). The per-person way is the same run with the engine called once per person on that
person's crop and the frame (its context recomputed per call); one more point per path re-infers each track
every other frame (`every=2`) at the target size and person count. Each point waits for other work to leave the
CPU (see `wait_for_quiet`), runs a 2-frame warm-up, then as many frames as fit in about `--seconds` (at least 3, at
most the clip's 40).

    python benchmarks/pipeline.py [--models paper edge] [--persons 1 4 8] [--sizes 640x480 1280x720] [--seconds 2.5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends import Backend, load_model
from emoedge.bench.clip import make_clip
from emoedge.bench.machine import QUIET, cpu_busy, describe, machine_line, wait_for_quiet
from emoedge.bench.models import random_checkpoint
from emoedge.export.onnx import export_onnx
from emoedge.fileio import atomic_write_text
from emoedge.runtime.engine import run
from emoedge.runtime.settings import RunSettings

CLIP_FRAMES, MIN_FRAMES, WARMUP_FRAMES = 40, 3, 2
TARGETS = {"paper": 6.0, "edge": 25.0}  # FPS at 640×480, 4 persons, given boxes, 2 CPU cores (the issue's)
TARGET_SIZE, TARGET_PERSONS = "640x480", 4
REUSE = 2  # `every` of the reuse point: each track re-inferred every other frame
LABELS = {"onnxruntime": "ONNX Runtime {}", "torch": "PyTorch {} channels_last"}
# the libraries the report names (those installed)
LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless", "opencv-python")
STAGES = ("decode", "detect", "preprocess", "engine", "smooth", "render", "write")


class PerPerson(Backend):
    """The same model called once per person, with the whole frame each time: the context is recomputed per call."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name, self.card, self.device, self.precision = inner.name, inner.card, inner.device, inner.precision
        self.reason = inner.reason + "; one call per person"

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        calls = [self.inner.infer(image[frame[i] : frame[i] + 1], body[i : i + 1]) for i in range(body.shape[0])]
        return {name: np.concatenate([c[name] for c in calls]) for name in calls[0]}


def measure(video: Path, boxes: Path, backend: Backend, seconds: float, tmp: Path, every: int) -> dict[str, Any]:
    """One point: warm-up, then a timed run writing the annotated video and the event log."""
    outputs = {"out": tmp / "out.mp4", "events": tmp / "events.jsonl", "boxes": boxes}
    warm = run(
        str(video), backend, settings=RunSettings(every=every, max_frames=WARMUP_FRAMES, progress=False), **outputs
    )
    per_frame = warm.seconds / max(warm.frames, 1)
    frames = int(min(CLIP_FRAMES, max(MIN_FRAMES, seconds / max(per_frame, 1e-3))))
    summary = run(str(video), backend, settings=RunSettings(every=every, max_frames=frames, progress=False), **outputs)
    row = {"frames": summary.frames, "fps": summary.fps, "engine_calls": summary.engine_calls}
    for stage in STAGES:
        stats = summary.stages.get(stage)
        row[f"{stage}_ms"] = {"mean": stats.mean_ms, "p50": stats.p50_ms, "p90": stats.p90_ms} if stats else None
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["paper", "edge"], choices=["paper", "edge"])
    parser.add_argument("--persons", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"])
    parser.add_argument("--seconds", type=float, default=2.5, help="about this long per timed point")
    parser.add_argument("--wait", type=float, default=120.0, help="longest wait for other work to stop, per point")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    sizes = {s: tuple(int(v) for v in s.split("x")) for s in args.sizes}
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clips = {(s, n): make_clip(tmp, size, n) for s, size in sizes.items() for n in args.persons}
        for model in args.models:
            checkpoint = random_checkpoint(tmp / f"{model}.pt", model)
            onnx_path = export_onnx(checkpoint, tmp / f"{model}.onnx").path
            paths = {"onnxruntime": load_model(onnx_path, device="cpu"), "torch": load_model(checkpoint, device="cpu")}
            for path, backend in paths.items():
                target = {k: v for k, v in clips.items() if k == (TARGET_SIZE, TARGET_PERSONS)}
                ways = [
                    ("shared", backend, 1, clips),
                    ("per-person", PerPerson(backend), 1, clips),
                    (f"shared, every {REUSE}", backend, REUSE, target),
                ]
                for way, engine, every, points in ways:
                    for (size, persons), (video, boxes) in points.items():
                        row = {
                            "model": model,
                            "path": LABELS[path].format(backend.precision.upper()),
                            "backend": path,
                            "way": way,
                            "size": size,
                            "persons": persons,
                        }
                        row["busy_before"] = wait_for_quiet(args.wait)
                        row |= measure(video, boxes, engine, args.seconds, tmp, every)
                        row["busy_after"] = cpu_busy()
                        rows.append(row)
                        print(json.dumps({k: row[k] for k in ("model", "backend", "way", "size", "persons", "fps")}))
    meta = {"machine": describe(), "seconds": time.perf_counter() - started, "wait": args.wait}
    write_results(args.out, meta, rows)
    return 0


def best(rows: list[dict], model: str, size: str, persons: int, way: str = "shared") -> dict | None:
    points = [r for r in rows if (r["model"], r["size"], r["persons"], r["way"]) == (model, size, persons, way)]
    return max(points, key=lambda r: r["fps"]) if points else None


def write_results(out: Path, meta: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "pipeline_cpu.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    models = sorted({r["model"] for r in rows}, key=["paper", "edge"].index)
    lines = [
        f"# Runtime pipeline, end to end — CPU ({meta['machine']['cpu']})",
        "",
        f"{machine_line(meta['machine'], LIBRARIES)}; {meta['seconds']:.0f} s in all.",
        "`emoedge.runtime.engine.run` on mp4v clips with a boxes file (ids given: no detector), writing the annotated",
        "MP4 and the JSON Lines log; random weights. FPS = frames ÷ wall time of the loop. Shared = one engine call per",
        "frame (context once, N crops batched); per-person = one call per person with the whole frame (context",
        f"recomputed per person), otherwise the same pipeline. Every {REUSE}: shared, each track re-inferred once",
        f"every {REUSE} frames and its last result reused in between (`run(every={REUSE})`).",
        "",
        "## Targets (2 CPU cores, given boxes, 4 persons, 640×480; the fastest path)",
        "",
        f"| model | target FPS | measured FPS | path | reached | per-person FPS (same path) | every {REUSE} (same path) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model in models:
        top = best(rows, model, TARGET_SIZE, TARGET_PERSONS)
        if top is None:
            continue
        reuse = _partner(rows, top, f"shared, every {REUSE}")
        lines.append(
            f"| {model} | ≥ {TARGETS[model]:g} | {top['fps']:.1f} | {top['path']} | "
            f"{'yes' if top['fps'] >= TARGETS[model] else 'no'} | {_partner(rows, top)['fps']:.1f} | "
            f"{reuse['fps']:.1f} |"
        )
    for model in models:
        lines += [
            "",
            f"## {model} model",
            "",
            "| path | way | size | N | FPS | × per-person | decode | preprocess | engine | smooth | render | write | frames "
            "| busy |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in (r for r in rows if r["model"] == model):
            ratio = f"{r['fps'] / _partner(rows, r)['fps']:.2f}×" if r["way"].startswith("shared") else ""
            cells = [_ms(r[f"{s}_ms"]) for s in ("decode", "preprocess", "engine", "smooth", "render", "write")]
            lines.append(
                f"| {r['path']} | {r['way']} | {r['size']} | {r['persons']} | {r['fps']:.1f} | {ratio} | "
                + " | ".join(cells)
                + f" | {r['frames']} | {_busy(r)} |"
            )
    lines += [
        "",
        "Stage cells: p50 / p90 ms per frame (preprocess and engine: per engine call). Busy: the machine's CPU use by",
        f"other work just before / after the point (points wait up to {meta['wait']:g} s for it to drop under "
        f"{QUIET:.0%}); a high figure means the point shared the cores and is slower than the machine can do.",
    ]
    atomic_write_text(out / "pipeline_cpu.md", "\n".join(lines) + "\n")
    print(f"written {out / 'pipeline_cpu.md'} and .json ({meta['seconds']:.0f} s)")


def _partner(rows: list[dict], row: dict, way: str = "per-person") -> dict:
    """The point of `way` measured with the same model, path, size and persons as `row`."""
    keys = ("model", "backend", "size", "persons")
    return next(o for o in rows if o["way"] == way and all(o[k] == row[k] for k in keys))


def _busy(row: dict) -> str:
    return " / ".join("–" if row[k] is None else f"{row[k]:.0%}" for k in ("busy_before", "busy_after"))


def _ms(stats: dict | None) -> str:
    return "–" if stats is None else f"{stats['p50']:.1f} / {stats['p90']:.1f}"


if __name__ == "__main__":
    sys.exit(main())
