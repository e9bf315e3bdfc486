"""`emoedge bench MODEL`: the engine alone, end to end (with the detector), and several streams, on this machine.

Engine: one call with the whole frame and N persons (the shared context) against N calls of one person each (the
context recomputed per person), p50/p90/p99 in interleaved rounds, each path's effective GFLOP/s beside the
matrix-multiply rate at its precision measured in the same run. End to end: the real `run` pipeline on the user's
clip (`--source`, with `--boxes` or the detector) or on a generated 640×480 clip of walking figures; with a detector
on the generated clip, the detector runs for its real cost on every frame it is due, but ByteTrack is handed the
clip's true boxes (a synthetic figure is no person to a trained detector; `CostOnlyFinder`, a `PersonFinder`). Several
streams: the same `run` over S copies of the clip. Printed as tables; with an output folder also written as bench.md
and bench.json.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends import load_model
from emoedge.bench.clip import make_clip
from emoedge.bench.machine import describe, wait_for_quiet
from emoedge.bench.peak import gemm_rate, model_gflops
from emoedge.bench.plan import BenchPlan
from emoedge.bench.timing import interleaved, per_person, summarise
from emoedge.fileio import atomic_write_text, output_folder
from emoedge.runtime.engine import run
from emoedge.runtime.finders import Found, YoloFinder
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.sources import Frame
from emoedge.runtime.streams import StreamSpec
from emoedge.runtime.summary import RunSummary
from emoedge.runtime.weights import detector_weights

CLIP_SIZE, CLIP_PERSONS = (640, 480), 4
DETECT_EVERY = (1, 3)


def bench(
    model: Path, out: Path | None = None, plan: BenchPlan = BenchPlan(), *, progress: bool = True
) -> dict[str, Any]:
    """Measure `model` as `plan` says; the result (its tables printed when `progress`), with `out` also written as
    out/bench.md and out/bench.json (their paths under "paths")."""
    if plan.detector is not None:  # found (or fetched) before any measuring, not after the first table
        plan = dataclasses.replace(plan, detector=str(detector_weights(plan.detector)))
    if out is not None:
        out = output_folder(out, "benchmark folder")
    backend = load_model(model, device=plan.device)
    say = print if progress else (lambda *_a, **_k: None)
    say(f"model: {model} ({backend.reason})", flush=True)
    machine = describe()
    busy = wait_for_quiet(30.0)
    engine = _engine(backend, plan, say)
    with tempfile.TemporaryDirectory() as folder:
        source, boxes, truth = _clip(plan, Path(folder))
        pipeline = _pipeline(backend, plan, source, boxes, truth, Path(folder), say)
        streams = _streams(backend, plan, source, boxes, say) if plan.streams > 1 else None
    result = {"model": str(model), "backend": backend.reason, "card": backend.card.name, "machine": machine,
              "busy_before": busy, "engine": engine, "pipeline": pipeline, "streams": streams,
              "clip": str(plan.source) if plan.source else f"generated {CLIP_SIZE[0]}x{CLIP_SIZE[1]}, "
              f"{CLIP_PERSONS} walking figures"}  # fmt: skip
    report = markdown(result)
    say("\n" + report)
    if out is not None:
        result["paths"] = {
            "json": atomic_write_text(out / "bench.json", json.dumps(result, indent=2) + "\n"),
            "markdown": atomic_write_text(out / "bench.md", report),
        }
    return result


def _engine(backend: Any, plan: BenchPlan, say: Any) -> list[dict[str, Any]]:
    """Shared-context and per-person latency per N, with effective GFLOP/s against the GEMM rate."""
    from emoedge.export.onnx import example_inputs

    points = {}
    for n in plan.persons:
        image, body = (t.numpy() for t in example_inputs(backend.card, n, seed=n))
        points["shared", n] = functools.partial(backend.infer, image, body)
        points["per person", n] = functools.partial(per_person, backend, image, body)
    times = interleaved(points, plan.seconds * len(points))
    device = "cuda" if str(getattr(backend, "input_device", "cpu")).startswith("cuda") else "cpu"
    # An OpenVINO GPU or NPU computes off the host whose memory it reads: no rate measured here compares with it.
    elsewhere = str(backend.device).startswith("openvino:") and backend.device not in ("openvino:CPU",)
    peak = None if elsewhere else gemm_rate(backend.precision, device)
    gflops = model_gflops(backend.card, (1, *plan.persons))
    rows = []
    for (way, n), ms in times.items():
        stats = summarise(ms, n)
        gflop = gflops[n] if way == "shared" else n * gflops[1]
        rate = gflop / (stats["p50_ms"] / 1000)
        rows.append({"way": way, "persons": n, **stats, "gflop": gflop, "gflop_per_s": rate,
                     "gemm_gflop_per_s": peak, "of_peak": rate / peak if peak else None})  # fmt: skip
        say(f"engine, {way}, N={n}: p50 {stats['p50_ms']:.1f} ms, {rate:.0f} GFLOP/s", flush=True)
    return rows


def _clip(plan: BenchPlan, folder: Path) -> tuple[Path, Path | None, dict[int, np.ndarray] | None]:
    """(source, boxes file, true boxes by frame for a generated clip)."""
    if plan.source is not None:
        return plan.source, plan.boxes, None
    video, boxes = make_clip(folder, CLIP_SIZE, CLIP_PERSONS, frames=plan.frames)
    frames = json.loads(boxes.read_text())["frames"]
    return video, boxes, {f["index"]: np.asarray(f["boxes"], np.float32) for f in frames}


def _pipeline(
    backend: Any, plan: BenchPlan, source: Path, boxes: Path | None, truth: dict | None, folder: Path, say: Any
) -> list[dict[str, Any]]:
    """End-to-end rows: boxes given (when there are boxes), then the detector every 1st and 3rd frame."""
    ways: list[tuple[str, Any, int]] = []
    if boxes is not None:
        ways.append(("boxes given", None, 1))
    if plan.detector is not None:
        ways += [(f"detector, every {k}", plan.detector, k) for k in DETECT_EVERY]
    rows = []
    warm = RunSettings(progress=False, max_frames=2, device=plan.device)
    run(str(source), backend, boxes=boxes, detector=None if boxes else plan.detector, settings=warm)
    for label, detector, every in ways:
        settings = RunSettings(progress=False, max_frames=plan.frames, detect_every=every, device=plan.device)
        kwargs: dict[str, Any] = {"boxes": boxes} if detector is None else {"detector": detector}
        if detector is not None and truth is not None:
            kwargs = {"detector": CostOnlyFinder(detector, truth, plan.device)}
        summary = run(str(source), backend, out=folder / "out.mp4", settings=settings, **kwargs)
        rows.append(_row(label, every, summary))
        say(f"end to end, {label}: {summary.fps:.1f} FPS", flush=True)
    return rows


def _row(label: str, every: int, summary: RunSummary) -> dict[str, Any]:
    stages = {
        name: {"mean_ms": s.mean_ms, "p50_ms": s.p50_ms, "p90_ms": s.p90_ms} for name, s in summary.stages.items()
    }
    return {"way": label, "detect_every": every, "frames": summary.frames, "fps": summary.fps,
            "events": summary.events, "engine_calls": summary.engine_calls, "stages": stages}  # fmt: skip


def _streams(backend: Any, plan: BenchPlan, source: Path, boxes: Path | None, say: Any) -> dict[str, Any]:
    """Total FPS of one process over `plan.streams` copies of the clip (boxes given: the emotion model's share)."""
    if boxes is None:
        return {"skipped": "several streams are measured with boxes given (--boxes)"}
    specs = [StreamSpec(f"s{i}", str(source), boxes) for i in range(plan.streams)]
    summary = run(specs, backend, settings=RunSettings(progress=False, max_frames=plan.frames))
    say(f"{plan.streams} streams in one process: {summary.fps:.1f} FPS in total", flush=True)
    return {"streams": plan.streams, "frames": summary.frames, "fps": summary.fps, "ticks": summary.ticks,
            "engine_calls": summary.engine_calls}  # fmt: skip


class CostOnlyFinder:
    """A `PersonFinder` that runs a YOLO model for its real cost on every frame it is asked for, and answers with a
    generated clip's true boxes: a synthetic figure is no person to a trained detector, yet its cost is what the
    benchmark measures."""

    gives_ids = False

    def __init__(self, weights: str, truth: dict[int, np.ndarray], device: str, *, size: int | None = None) -> None:
        self.yolo = YoloFinder(weights, device=device, size=size)
        self.truth, self.name = truth, f"{self.yolo.name} (cost only: the clip's true boxes)"

    def find(self, frames: list[Frame]) -> list[Found]:
        self.yolo.find(frames)  # the detector's real work; its answer replaced by the truth
        boxes = [self.truth.get(frame.index, np.zeros((0, 4), np.float32)) for frame in frames]
        return [Found(b, np.full(len(b), 0.9, np.float32)) for b in boxes]

    def unused(self) -> list[str]:
        return []


def markdown(result: dict[str, Any]) -> str:
    """The report: machine, engine table, end-to-end table, streams line."""
    m = result["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    lines = [
        f"# emoedge bench: {result['card']}",
        "",
        f"- model: `{result['model']}` — {result['backend']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, BF16: {m['cpu_bf16']}, "
        f"GPU: {m['gpu'] or 'none'}; Python {m['python']}; {libs}" + (f"; commit {m['commit']}" if m["commit"] else ""),
        f"- clip: {result['clip']}",
        "",
        "## Engine alone (one frame, N persons)",
        "",
        "| way | N | p50 ms | p90 ms | p99 ms | frames/s | persons/s | GFLOP | GFLOP/s | GEMM GFLOP/s here | of GEMM |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["engine"]:
        peak = f"{r['gemm_gflop_per_s']:.0f}" if r["gemm_gflop_per_s"] else "n/a"
        share = f"{100 * r['of_peak']:.0f}%" if r["of_peak"] else "n/a"
        lines.append(
            f"| {r['way']} | {r['persons']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['frames_per_s']:.1f} | {r['persons_per_s']:.1f} | {r['gflop']:.1f} | {r['gflop_per_s']:.0f} | "
            f"{peak} | {share} |"
        )
    if result["pipeline"]:
        stages = [s for s in ("decode", "detect", "preprocess", "engine", "smooth", "render", "write")]
        lines += ["", "## End to end (mean ms per frame by stage)", "",
                  "| persons from | FPS | " + " | ".join(stages) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in stages) + " |"]  # fmt: skip
        for r in result["pipeline"]:
            cells = [f"{r['stages'][s]['mean_ms']:.1f}" if s in r["stages"] else "" for s in stages]
            lines.append(f"| {r['way']} | {r['fps']:.1f} | " + " | ".join(cells) + " |")
    s = result["streams"]
    if s and "fps" in s:
        lines += ["", f"## {s['streams']} streams in one process", "",
                  f"{s['fps']:.1f} FPS in total, {s['engine_calls']} engine calls over {s['ticks']} ticks."]  # fmt: skip
    return "\n".join(lines) + "\n"
