"""`emoedge bench MODEL`: the engine alone, end to end (with the detector), and several streams, on this machine.

Engine: one call with the whole frame and N persons (the shared context) against N calls of one person each (the
context recomputed per person), p50/p90/p99 in interleaved rounds, each path's effective GFLOP/s beside the
matrix-multiply rate at its precision measured in the same run. End to end: the real `run` pipeline on the user's
clip (`--source`, with `--boxes` or the detector) or on a generated 640×480 clip of walking figures; with a detector
on the generated clip, the detector runs for its real cost on every frame it is due, but ByteTrack is handed the
clip's true boxes (a synthetic figure is no person to a trained detector; `CostOnlyFinder`, a `PersonFinder`). Several
streams: the same `run` over S copies of the clip. Printed as tables; with an output folder also written as bench.md
and bench.json.

A model is measured in each way it can run here, side by side (`mode` in every row): "eager" and "cuda graphs" (one
captured graph per shape bucket) for a checkpoint on a CUDA device, a GPU engine and an ONNX file on ONNX Runtime's
CUDA provider, and "compiled" for a checkpoint when asked (`plan.compile`: torch.compile takes tens of seconds); on
CUDA with the GPU memory each mode's warmed shapes hold (torch.cuda.memory_reserved's growth as each bucket is first
run: PyTorch's allocator, which ONNX Runtime does not use) and each mode's largest score difference from eager. Other
files run one way, "default": as their backend runs them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends import Backend, load_model
from emoedge.bench.clip import make_clip
from emoedge.bench.machine import describe, wait_for_quiet
from emoedge.bench.peak import gemm_rate, model_gflops
from emoedge.bench.plan import BenchPlan
from emoedge.bench.timing import interleaved, per_person, summarise
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.fileio import atomic_write_text, output_folder
from emoedge.formats import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, ONNX_SUFFIXES
from emoedge.runtime.engine import run
from emoedge.runtime.finders import Found, YoloFinder
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.sources import Frame
from emoedge.runtime.streams import StreamSpec
from emoedge.runtime.summary import FIRST, RunSummary
from emoedge.runtime.weights import detector_weights

CLIP_SIZE, CLIP_PERSONS = (640, 480), 4
DETECT_EVERY = (1, 3)
# load_model's options per mode (see the module docstring); "default": a file that is not a checkpoint, as it loads
MODES: dict[str, dict[str, Any]] = {
    "eager": {"cuda_graphs": "off"},
    "cuda graphs": {"cuda_graphs": "on"},
    "compiled": {"compile": True},
    "default": {},
}
MIB = 2**20
START_UP = f"start (first {FIRST} frames)"  # the pipeline row of a run's first frames
START_STAGES = ("preprocess", "engine")  # the stages a run's set-up (CUDA, cuDNN, a new shape) lands in
STREAMS_WITHOUT_BOXES = "several streams are measured with boxes given (--boxes)"


def bench(
    model: Path, out: Path | None = None, plan: BenchPlan = BenchPlan(), *, progress: bool = True
) -> dict[str, Any]:
    """Measure `model` as `plan` says, in each of its `modes`; the result (its tables printed when `progress`), with
    `out` also written as out/bench.md and out/bench.json (their paths under "paths")."""
    model = Path(model)
    if plan.detector is not None:  # found (or fetched) before any measuring, not after the first table
        plan = dataclasses.replace(plan, detector=str(detector_weights(plan.detector)))
    if out is not None:
        out = output_folder(out, "benchmark folder")
    names, notes = modes(model, plan)
    say = print if progress else (lambda *_a, **_k: None)
    machine = describe()
    busy = wait_for_quiet(30.0)
    result: dict[str, Any] = {"model": str(model), "machine": machine, "busy_before": busy, "notes": notes,
                              "modes": [], "engine": [], "pipeline": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        source, boxes, truth = _clip(plan, Path(folder))
        # several streams: one row per mode (a list), measured with boxes given only
        result["streams"] = None if plan.streams == 1 else [] if boxes else {"skipped": STREAMS_WITHOUT_BOXES}
        reference: dict[int, np.ndarray] = {}  # the first mode's scores per N, which the others are compared with
        for name in names:
            backend = load_model(model, device=plan.device, precision=plan.precision, **MODES[name])
            say(f"model: {model}, {name} ({backend.reason})", flush=True)
            result["modes"].append({"mode": name, "backend": backend.reason, "gpu_memory": _warm_memory(backend, plan)})
            if "card" not in result:
                result.update(backend=backend.reason, card=backend.card.name, rates=_rates(backend, plan))
            result["engine"] += _engine(backend, plan, name, result["rates"], reference, say)
            result["pipeline"] += _pipeline(backend, plan, name, source, boxes, truth, Path(folder), say)
            if isinstance(result["streams"], list):
                result["streams"].append(_streams(backend, plan, name, source, boxes, say))  # type: ignore[arg-type]
            device = str(backend.input_device)
            del backend  # the last reference: its weights and graphs are freed before the next mode loads
            _release(device)
    result["clip"] = (str(plan.source) if plan.source else
                      f"generated {CLIP_SIZE[0]}x{CLIP_SIZE[1]}, {CLIP_PERSONS} walking figures")  # fmt: skip
    report = markdown(result)
    say("\n" + report)
    if out is not None:
        result["paths"] = {
            "json": atomic_write_text(out / "bench.json", json.dumps(result, indent=2) + "\n"),
            "markdown": atomic_write_text(out / "bench.md", report),
        }
    return result


def modes(model: Path, plan: BenchPlan) -> tuple[list[str], list[str]]:
    """(the modes `model` is measured in, the report's notes on those it is not): a checkpoint eager, with CUDA
    graphs where it runs on CUDA, compiled when `plan.compile`; a GPU engine, and an ONNX file on `--device cuda`
    (ONNX Runtime's CUDA provider), eager and with CUDA graphs; any other file "default" (refused with
    `plan.compile`: torch.compile compiles checkpoints)."""
    if model.suffix.lower() not in CHECKPOINT_SUFFIXES:
        if plan.compile:
            raise EmoedgeError(f"--compile: torch.compile compiles checkpoints (.pt, .pth); {model} is not one")
        if _graphed_file(model, plan):
            return ["eager", "cuda graphs"], ["compiled: checkpoints only"]
        return ["default"], [
            "modes: as the backend runs the file (eager and CUDA graphs side by side: checkpoints on CUDA, GPU engines, "
            "ONNX files with --device cuda; compiled: checkpoints)"
        ]
    from emoedge.backends.torch import choose

    cuda = choose(plan.device, plan.precision)[0].startswith("cuda")
    names = ["eager", *(["cuda graphs"] if cuda else []), *(["compiled"] if plan.compile else [])]
    notes = [] if cuda else ["graphs: CUDA only"]
    return names, notes + ([] if plan.compile else ["compiled: not measured (--compile)"])


def _graphed_file(model: Path, plan: BenchPlan) -> bool:
    """Whether a file other than a checkpoint can run with and without CUDA graphs: an engine not built for a DLA
    core, or an ONNX file on ONNX Runtime's CUDA provider (`--device cuda`)."""
    suffix = model.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        from emoedge.formats.engine import read_engine_info

        return read_engine_info(model).dla_core is None
    return suffix in ONNX_SUFFIXES and parse_device(plan.device).kind == "cuda"


def _warm_memory(backend: Backend, plan: BenchPlan) -> dict[str, Any] | None:
    """Run every shape the engine rows meet (one frame, up to the largest N) once, before they are timed; on CUDA
    the memory each holds: torch.cuda.memory_reserved's growth as it is first run (a captured graph keeps its own
    pool; eager keeps the caching allocator's blocks). None off CUDA."""
    device = str(backend.input_device)
    if not device.startswith("cuda"):
        backend.warm(1, max(plan.persons))
        return None
    start, buckets = _reserved(device), {}
    for frames, persons in backend.warm_shapes(1, max(plan.persons)):
        before = _reserved(device)
        backend.warm(frames, persons)  # the shapes below it are warm already: only this one is new
        buckets[f"F={frames} N={persons}"] = _reserved(device) - before
    return {"held_mib": _reserved(device) - start, "buckets": buckets}


def _reserved(device: str) -> float:
    """MiB torch's caching allocator holds on the CUDA `device`, once the work queued there is done."""
    import torch

    torch.cuda.synchronize(device)
    return torch.cuda.memory_reserved(device) / MIB


def _release(device: str) -> None:
    """Give the GPU memory a released model held back to the device, so that the next mode is measured alone."""
    if device.startswith("cuda"):
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


def _rates(backend: Backend, plan: BenchPlan) -> dict[str, Any]:
    """The model's GFLOP per N and the GEMM rate at its precision on its device, measured once for every mode."""
    device = "cuda" if str(getattr(backend, "input_device", "cpu")).startswith("cuda") else "cpu"
    # An OpenVINO GPU or NPU computes off the host whose memory it reads: no rate measured here compares with it.
    elsewhere = str(backend.device).startswith("openvino:") and backend.device not in ("openvino:CPU",)
    peak = None if elsewhere else gemm_rate(backend.precision, device)
    return {"gemm_gflop_per_s": peak, "gflop": model_gflops(backend.card, (1, *plan.persons))}


def _engine(
    backend: Backend, plan: BenchPlan, mode: str, rates: dict[str, Any], reference: dict[int, np.ndarray], say: Any
) -> list[dict[str, Any]]:
    """Shared-context and per-person latency per N, with effective GFLOP/s against the GEMM rate and the scores'
    largest difference from `reference` (the first mode's; filled in when empty)."""
    from emoedge.export.onnx import example_inputs

    points, differences = {}, {}
    for n in plan.persons:
        image, body = (t.numpy() for t in example_inputs(backend.card, n, seed=n))
        points["shared", n] = functools.partial(backend.infer, image, body)
        points["per person", n] = functools.partial(per_person, backend, image, body)
        scores = backend.infer(image, body)["scores"]
        differences[n] = float(np.abs(scores - reference.setdefault(n, scores)).max())
    times = interleaved(points, plan.seconds * len(points))
    peak, gflops = rates["gemm_gflop_per_s"], rates["gflop"]
    rows = []
    for (way, n), ms in times.items():
        stats = summarise(ms, n)
        gflop = gflops[n] if way == "shared" else n * gflops[1]
        rate = gflop / (stats["p50_ms"] / 1000)
        rows.append({"mode": mode, "way": way, "persons": n, **stats, "gflop": gflop, "gflop_per_s": rate,
                     "gemm_gflop_per_s": peak, "of_peak": rate / peak if peak else None,
                     "max_abs_diff": differences[n]})  # fmt: skip
        say(f"engine, {mode}, {way}, N={n}: p50 {stats['p50_ms']:.1f} ms, {rate:.0f} GFLOP/s", flush=True)
    return rows


def _clip(plan: BenchPlan, folder: Path) -> tuple[Path, Path | None, dict[int, np.ndarray] | None]:
    """(source, boxes file, true boxes by frame for a generated clip)."""
    if plan.source is not None:
        return plan.source, plan.boxes, None
    video, boxes = make_clip(folder, CLIP_SIZE, CLIP_PERSONS, frames=plan.frames)
    frames = json.loads(boxes.read_text())["frames"]
    return video, boxes, {f["index"]: np.asarray(f["boxes"], np.float32) for f in frames}


def _pipeline(
    backend: Backend,
    plan: BenchPlan,
    mode: str,
    source: Path,
    boxes: Path | None,
    truth: dict | None,
    folder: Path,
    say: Any,
) -> list[dict[str, Any]]:
    """End-to-end rows: the start of a run (its first FIRST frames, after the run's own warm-up, as a live camera
    meets them), then boxes given (when there are boxes) and the detector every 1st and 3rd frame."""
    ways: list[tuple[str, Any, int]] = []
    if boxes is not None:
        ways.append(("boxes given", None, 1))
    if plan.detector is not None:
        ways += [(f"detector, every {k}", plan.detector, k) for k in DETECT_EVERY]
    start = RunSettings(progress=False, max_frames=FIRST, device=plan.device)
    summary = run(str(source), backend, boxes=boxes, detector=None if boxes else plan.detector, settings=start)
    rows = [{"mode": mode, **_row(START_UP, 1, summary)}]
    for label, detector, every in ways:
        settings = RunSettings(progress=False, max_frames=plan.frames, detect_every=every, device=plan.device)
        kwargs: dict[str, Any] = {"boxes": boxes} if detector is None else {"detector": detector}
        if detector is not None and truth is not None:
            kwargs = {"detector": CostOnlyFinder(detector, truth, plan.device)}
        summary = run(str(source), backend, out=folder / "out.mp4", settings=settings, **kwargs)
        rows.append({"mode": mode, **_row(label, every, summary)})
        say(f"end to end, {mode}, {label}: {summary.fps:.1f} FPS", flush=True)
    return rows


def _row(label: str, every: int, summary: RunSummary) -> dict[str, Any]:
    stages = {
        name: {"mean_ms": s.mean_ms, "p50_ms": s.p50_ms, "p90_ms": s.p90_ms, "first_p90_ms": s.first_p90_ms}
        for name, s in summary.stages.items()
    }
    return {"way": label, "detect_every": every, "frames": summary.frames, "fps": summary.fps,
            "events": summary.events, "engine_calls": summary.engine_calls, "stages": stages}  # fmt: skip


def start_up_lines(pipeline: list[dict[str, Any]]) -> list[str]:
    """The report's table of a run's first frames against its steady state, per mode: each of START_STAGES' p90
    over the first FIRST frames beside its p50 over the steady run that follows (the first row after the start)."""
    rows = []
    for mode in dict.fromkeys(r["mode"] for r in pipeline):
        ways = {r["way"]: r for r in pipeline if r["mode"] == mode}
        first = ways.pop(START_UP, None)
        steady = next(iter(ways.values()), None)
        if steady is None or first is None:
            continue
        for stage in (s for s in START_STAGES if s in first["stages"] and s in steady["stages"]):
            early, usual = first["stages"][stage]["first_p90_ms"], steady["stages"][stage]["p50_ms"]
            ratio = f"{early / usual:.1f}x" if usual > 0 else "n/a"
            rows.append(f"| {mode} | {stage} | {early:.1f} | {usual:.1f} | {ratio} |")
    if not rows:
        return []
    return ["", f"## The first {FIRST} frames of a run (after its warm-up) against the steady state", "",
            "| mode | stage | first frames p90 ms | steady p50 ms | ratio |", "| --- | --- | --- | --- | --- |", *rows]  # fmt: skip


def _streams(backend: Backend, plan: BenchPlan, mode: str, source: Path, boxes: Path, say: Any) -> dict[str, Any]:
    """Total FPS of one process over `plan.streams` copies of the clip, boxes given (the emotion model's share)."""
    specs = [StreamSpec(f"s{i}", str(source), boxes) for i in range(plan.streams)]
    summary = run(specs, backend, settings=RunSettings(progress=False, max_frames=plan.frames))
    say(f"{plan.streams} streams in one process, {mode}: {summary.fps:.1f} FPS in total", flush=True)
    return {"mode": mode, "streams": plan.streams, "frames": summary.frames, "fps": summary.fps, "ticks": summary.ticks,
            "engine_calls": summary.engine_calls}  # fmt: skip


class CostOnlyFinder:
    """A `PersonFinder` that runs a YOLO model for its real cost on every frame it is asked for, and answers with a
    generated clip's true boxes: a synthetic figure is no person to a trained detector, yet its cost is what the
    benchmark measures."""

    gives_ids = False

    def __init__(self, weights: str, truth: dict[int, np.ndarray], device: str, *, size: int | None = None) -> None:
        self.yolo = YoloFinder(weights, device=device, size=size)
        self.truth, self.name = truth, f"{self.yolo.name} (cost only: the clip's true boxes)"

    def warm(self, sizes: Sequence[tuple[int, int]]) -> float:
        return self.yolo.warm(sizes)  # as a run warms its detector

    def find(self, frames: list[Frame]) -> list[Found]:
        self.yolo.find(frames)  # the detector's real work; its answer replaced by the truth
        boxes = [self.truth.get(frame.index, np.zeros((0, 4), np.float32)) for frame in frames]
        return [Found(b, np.full(len(b), 0.9, np.float32)) for b in boxes]

    def unused(self) -> list[str]:
        return []


def markdown(result: dict[str, Any]) -> str:
    """The report: machine, modes (with the GPU memory their warmed shapes hold), engine table, end-to-end table,
    streams lines; a `mode` column in every table."""
    m = result["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    lines = [
        f"# emoedge bench: {result['card']}",
        "",
        f"- model: `{result['model']}`",
        *(f"- {mode['mode']}: {mode['backend']}" for mode in result["modes"]),
        *(f"- {note}" for note in result["notes"]),
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, BF16: {m['cpu_bf16']}, "
        f"GPU: {m['gpu'] or 'none'}; Python {m['python']}; {libs}" + (f"; commit {m['commit']}" if m["commit"] else ""),
        f"- clip: {result['clip']}",
    ]
    held = [mode for mode in result["modes"] if mode["gpu_memory"] is not None]
    if held:
        lines += ["", "## GPU memory held by the warmed shapes (torch.cuda.memory_reserved growth)", "",
                  "| mode | MiB | per shape, MiB |", "| --- | --- | --- |"]  # fmt: skip
        for mode in held:
            memory = mode["gpu_memory"]
            shapes = ", ".join(f"{shape}: {mib:.0f}" for shape, mib in memory["buckets"].items())
            lines.append(f"| {mode['mode']} | {memory['held_mib']:.0f} | {shapes} |")
    lines += [
        "",
        "## Engine alone (one frame, N persons)",
        "",
        "| mode | way | N | p50 ms | p90 ms | p99 ms | frames/s | persons/s | GFLOP | GFLOP/s | GEMM GFLOP/s here | "
        "of GEMM | max abs Δ scores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["engine"]:
        peak = f"{r['gemm_gflop_per_s']:.0f}" if r["gemm_gflop_per_s"] else "n/a"
        share = f"{100 * r['of_peak']:.0f}%" if r["of_peak"] else "n/a"
        lines.append(
            f"| {r['mode']} | {r['way']} | {r['persons']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['frames_per_s']:.1f} | {r['persons_per_s']:.1f} | {r['gflop']:.1f} | {r['gflop_per_s']:.0f} | "
            f"{peak} | {share} | {r['max_abs_diff']:.1e} |"
        )
    if result["pipeline"]:
        stages = [s for s in ("decode", "detect", "preprocess", "engine", "smooth", "render", "write")]
        lines += ["", "## End to end (mean ms per frame by stage)", "",
                  "| mode | persons from | FPS | " + " | ".join(stages) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in stages) + " |"]  # fmt: skip
        for r in result["pipeline"]:
            cells = [f"{r['stages'][s]['mean_ms']:.1f}" if s in r["stages"] else "" for s in stages]
            lines.append(f"| {r['mode']} | {r['way']} | {r['fps']:.1f} | " + " | ".join(cells) + " |")
        lines += start_up_lines(result["pipeline"])
    streams = result["streams"]
    if isinstance(streams, list) and streams:
        lines += ["", f"## {streams[0]['streams']} streams in one process", ""]
        lines += [f"- {s['mode']}: {s['fps']:.1f} FPS in total, {s['engine_calls']} engine calls over {s['ticks']} "
                  "ticks" for s in streams]  # fmt: skip
    return "\n".join(lines) + "\n"
