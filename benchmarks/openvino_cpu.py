"""OpenVINO on the CPU: emoedge's fastest CPU path against the best OpenVINO set-up a user could make by hand on the
same files, and against eager PyTorch FP32 (issue 24).

Why: on x86 CPUs OpenVINO runs emoedge's own ONNX files faster than ONNX Runtime, so `load_model(device="auto")`
picks it on machines without a CUDA GPU. This script shows that choice is the right one and that nothing a user could
set by hand on the same files beats it. Paper model (ResNet50 ×3 at 224) and edge variant, random weights (latency
does not depend on them), N = 1, 4, 16 persons, one frame; every point in the same interleaved rounds
(emoedge.bench.timing.interleaved), so ratios stay fair while other jobs share the cores.

Files per model: the checkpoint, its FP32 ONNX, the INT8 ONNX for CPUs (ONNX Runtime quantize_static, emoedge's
fastest CPU file before OpenVINO) and the INT8 IR folder (`emoedge export openvino --int8`, NNCF), both calibrated on
the same sample images. Paths:
- PyTorch eager FP32 (the reference) and ONNX Runtime on the INT8 ONNX for CPUs (emoedge's best before);
- emoedge `load_model(file)` with every default (device and precision "auto") on each ONNX/IR file;
- by hand: `core.compile_model(file, "CPU", config)` (one `openvino.Core()` for the run, the one emoedge uses: Cores
  made and released one after another crash the process, see emoedge.formats.openvino) with the latency hint and each
  inference precision
  OpenVINO's CPU takes here (f32, bf16 where the CPU has it), plus the throughput hint, on the same files — the best
  of these per N is "the best by hand".
Also: whether OpenVINO's asynchronous infer requests pay for several frames in one tick (one call with F frames
against F requests in flight on a throughput-hint model), and the sample recipe's test mAP through each emoedge path.

    python benchmarks/openvino_cpu.py [--models paper edge] [--persons 1 4 16] [--seconds 1] [--out benchmarks/results]

(Not benchmarks/openvino.py: a script's folder comes first on sys.path, and a script named openvino.py would be
imported in place of the openvino package.)
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from emoedge.backends import load_model
from emoedge.bench.machine import describe, machine_line
from emoedge.bench.models import random_checkpoint
from emoedge.bench.peak import gemm_rate, model_gflops
from emoedge.bench.timing import interleaved, summarise
from emoedge.config import load_recipe
from emoedge.data.emotic import EmoticWarning
from emoedge.data.sample import write_sample
from emoedge.evaluation.evaluate import evaluate_model
from emoedge.export.onnx import example_inputs, export_onnx, spread
from emoedge.export.openvino import export_openvino
from emoedge.export.precision import to_int8
from emoedge.fileio import atomic_write_text
from emoedge.formats.openvino import core
from emoedge.resources import shipped_folder
from emoedge.training.trainer import train

CALIB_IMAGES = (
    8  # random-weight models; 16 paper-model frames took ONNX Runtime's min/max calibration past this machine's memory
)
FILES = {"onnx": "FP32 ONNX", "int8cpu": "INT8 ONNX for CPUs", "ir-int8": "INT8 IR (NNCF)"}
LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf")
# key -> (label, file kind, how): "torch"/"ort"/"emoedge" through load_model, or a hand-made OpenVINO config
PATHS = {
    "torch-fp32": ("PyTorch eager FP32", "pt", "torch"),
    "ort-int8cpu": ("ONNX Runtime, INT8 ONNX for CPUs (emoedge's best before)", "int8cpu", "ort"),
    **{f"emoedge-{k}": (f"emoedge auto, {v}", k, "emoedge") for k, v in FILES.items()},
}
HAND = {"latency-f32": ("LATENCY", "f32"), "latency-bf16": ("LATENCY", "bf16"), "throughput": ("THROUGHPUT", None)}


def hand_compiled(path: Path, hint: str, precision: str | None):
    """What a user would write: core.compile_model(file, "CPU", {hint, inference precision})."""
    import openvino as ov
    import openvino.properties.hint as hints

    config = {hints.performance_mode: getattr(hints.PerformanceMode, hint)}
    if precision:
        config[hints.inference_precision] = getattr(ov.Type, precision)
    graph = path / "model.xml" if path.is_dir() else path
    return core().compile_model(str(graph), "CPU", config)


def hand_call(request, image, body):
    return request.infer({"image": image, "body": body, "frame": np.zeros(len(body), np.int64)})


def paths_here() -> dict:
    """PATHS plus the hand-made OpenVINO configs this CPU takes (bf16 only where it has BF16)."""
    bf16 = "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    paths = dict(PATHS)
    for kind, name in FILES.items():
        for key, (hint, precision) in HAND.items():
            if precision == "bf16" and not bf16:
                continue
            label = f"by hand: OpenVINO {hint.lower()} hint" + (f", {precision}" if precision else "") + f", {name}"
            paths[f"hand-{key}-{kind}"] = (label, kind, key)
    return paths


def time_model(files: dict[str, Path], persons: list[int], seconds: float, paths: dict) -> list[dict]:
    import openvino as ov

    points, precisions, reasons, card = {}, {}, {}, None
    for key, (_, kind, how) in paths.items():
        if how in HAND:
            compiled = hand_compiled(files[kind], *HAND[how])
            request = compiled.create_infer_request()
            bf16 = compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
            precisions[key] = "int8" if kind != "onnx" else "bf16" if bf16 else "fp32"
            call = functools.partial(hand_call, request)
        else:
            backend = load_model(
                files[kind], device="cpu" if how in ("torch", "ort") else "auto",
                precision="fp32" if how == "torch" else "auto",
            )  # fmt: skip
            precisions[key], reasons[key], card = backend.precision, backend.reason, backend.card
            call = backend.infer
        for n in persons:
            image, body = (t.numpy() for t in example_inputs(card, n, seed=n))
            points[key, n] = functools.partial(call, image, body)
    times_of = interleaved(points, seconds * len(points))
    gemm = {p: gemm_rate(p) for p in set(precisions.values())}
    gflop = model_gflops(card, persons)
    rows = []
    for (key, n), times in times_of.items():
        stats = summarise(times, n)
        rate, peak = gflop[n] / (stats["p50_ms"] / 1000), gemm[precisions[key]]
        rows.append({"path": key, "label": paths[key][0], "persons": n, "precision": precisions[key], **stats,
                     "gflop": gflop[n], "gflop_per_s": rate, "gemm_gflop_per_s": peak,
                     "of_gemm": rate / peak if peak else None, "reason": reasons.get(key, "")})  # fmt: skip
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    return rows


def async_frames(path: Path, frames: int, seconds: float) -> dict:
    """Several frames in one tick (1 person each): one call with F frames (emoedge's way) against F requests in
    flight on a throughput-hint model (AsyncInferQueue), p50 ms per tick."""
    import openvino as ov

    backend = load_model(path)
    image, body = (t.numpy() for t in example_inputs(backend.card, frames, seed=1, frames=frames))
    frame = spread(frames, frames).numpy()
    compiled = hand_compiled(path, "THROUGHPUT", None)
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def in_flight():
        for f in range(frames):
            queue.start_async({"image": image[f : f + 1], "body": body[f : f + 1], "frame": np.zeros(1, np.int64)})
        queue.wait_all()

    points = {"one call": functools.partial(backend.infer, image, body, frame), "async": in_flight}
    times = interleaved(points, seconds * 2)
    return {"frames": frames, "requests": len(queue), **{k: float(np.median(v)) for k, v in times.items()}}


def sample_accuracy(tmp: Path, root: Path) -> dict[str, float]:
    """Test mAP of the sample recipe's trained model through each emoedge path (OpenVINO as `auto` runs it)."""
    run = train(load_recipe(shipped_folder("recipe") / "sample.yaml"), tmp / "sample-run", data_root=root,
                progress=False)  # fmt: skip
    onnx_path = export_onnx(run.best, tmp / "sample.onnx").path
    files = {
        "pt": run.best,
        "onnx": onnx_path,
        "int8cpu": to_int8(onnx_path, tmp / "sample-int8cpu.onnx", target="cpu", data=root).path,
        "ir-int8": export_openvino(onnx_path, tmp / "sample-ir-int8", int8=True, data=root).path,
    }
    maps = {}
    for key, (_, kind, how) in PATHS.items():
        backend = load_model(files[kind], device="cpu" if how in ("torch", "ort") else "auto",
                             precision="fp32" if how == "torch" else "auto")  # fmt: skip
        maps[key] = evaluate_model(backend, root, progress=False, workers=0).m_ap
        print(f"sample test mAP, {PATHS[key][0]}: {100 * maps[key]:.2f}", flush=True)
    return maps


def prepare(name: str, tmp: Path, calib: Path) -> dict[str, Path]:
    checkpoint = random_checkpoint(tmp / f"{name}.pt", name)
    onnx_path = export_onnx(checkpoint, tmp / f"{name}.onnx").path
    return {
        "pt": checkpoint,
        "onnx": onnx_path,
        "int8cpu": to_int8(
            onnx_path, tmp / f"{name}-int8cpu.onnx", target="cpu", calib=calib, max_images=CALIB_IMAGES
        ).path,
        "ir-int8": export_openvino(
            onnx_path, tmp / f"{name}-ir-int8", int8=True, calib=calib, max_images=CALIB_IMAGES
        ).path,
    }


def p50(rows: list[dict], model: str, path: str, n: int) -> float:
    return next(r["p50_ms"] for r in rows if (r["model"], r["path"], r["persons"]) == (model, path, n))


def verdicts(rows: list[dict], maps: dict, models: list[str], persons: list[int], n: int, paths: dict) -> list[dict]:
    out = []
    ours = [k for k in paths if k.startswith("emoedge-")]
    hand = [k for k in paths if k.startswith("hand-")]
    for model in models:
        for m in persons:
            best, by_hand = (min(keys, key=lambda k: p50(rows, model, k, m)) for keys in (ours, hand))
            ratio = p50(rows, model, by_hand, m) / p50(rows, model, best, m)
            out.append({"model": model, "persons": m, "target": "emoedge's fastest CPU path ≥ 1.0× the best "
                        "OpenVINO set-up by hand", "measured": ratio, "goal": 1.0, "reached": ratio >= 1.0,
                        "note": f"emoedge: {paths[best][0]}; {paths[by_hand][0]}"})  # fmt: skip
        best = min(ours, key=lambda k: p50(rows, model, k, n))
        speedup = p50(rows, model, "torch-fp32", n) / p50(rows, model, best, n)
        change = 100 * (maps[best] - maps["torch-fp32"]) if maps else float("nan")
        out.append({"model": model, "persons": n, "target": "emoedge's fastest CPU path ≥ 4× PyTorch eager FP32, "
                    "sample mAP drop ≤ 0.5 pt", "measured": speedup, "goal": 4.0,
                    "reached": bool(speedup >= 4.0 and change >= -0.5),
                    "note": f"{paths[best][0]}; sample mAP change {change:+.2f} pt"})  # fmt: skip
        before = p50(rows, model, "ort-int8cpu", n) / p50(rows, model, best, n)
        out.append({"model": model, "persons": n, "target": "emoedge's fastest CPU path against its best before "
                    "(ONNX Runtime, INT8 ONNX for CPUs)", "measured": before, "goal": 1.0, "reached": before >= 1.0,
                    "note": ""})  # fmt: skip
    return out


def markdown(meta, rows, maps, goals, asyncs, paths, n) -> str:
    lines = [
        f"# OpenVINO on the CPU — {meta['machine']['cpu']}",
        "",
        f"{machine_line(meta['machine'], LIBRARIES)}. Random weights; inputs: one frame [1,3,224,224] and N body "
        "crops [N,3,224,224] as numpy arrays. All points of a model in the same interleaved rounds; other work may "
        "have shared the CPU during the run (2 cores shared with other jobs): compare p50s within this run only.",
        "",
        "emoedge rows are `load_model(file)` with every default (on this CPU-only machine `auto` runs ONNX files and "
        "IR folders in OpenVINO); by-hand rows are `core.compile_model(file, 'CPU', config)` on the same files, with "
        "one `openvino.Core()` for the run.",
        "",
        f"## Targets (same run; the 4× target at N = {n})",
        "",
        "| model | N | target | measured | reached | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for g in goals:
        lines.append(f"| {g['model']} | {g['persons']} | {g['target']} | {g['measured']:.2f}× | "
                     f"{'yes' if g['reached'] else 'no'} | {g['note']} |")  # fmt: skip
    if maps:
        lines += ["", "## Sample recipe's trained model, test mAP per emoedge path", "",
                  "| path | test mAP | change vs PyTorch FP32 |", "| --- | --- | --- |"]  # fmt: skip
        for key, value in maps.items():
            lines.append(f"| {paths[key][0]} | {100 * value:.2f} | {100 * (value - maps['torch-fp32']):+.2f} pt |")
    if asyncs:
        lines += ["", "## Several frames in one tick: one call or asynchronous requests (emoedge auto file: FP32 "
                  "ONNX, 1 person per frame)", "", "| model | frames | one call p50 ms | F async requests p50 ms "
                  "(throughput hint) | requests in flight |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for model, a in asyncs.items():
            lines.append(f"| {model} | {a['frames']} | {a['one call']:.1f} | {a['async']:.1f} | {a['requests']} |")
    for model in dict.fromkeys(r["model"] for r in rows):
        lines += ["", f"## Latency — {model} model", "",
                  "| path | N | precision | p50 ms | p90 ms | frames/s | persons/s | × PyTorch FP32 | GFLOP/s | "
                  "GEMM GFLOP/s at its precision | of GEMM |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in sorted((r for r in rows if r["model"] == model), key=lambda r: (r["persons"], r["p50_ms"])):
            speedup = p50(rows, model, "torch-fp32", r["persons"]) / r["p50_ms"]
            peak = f"{r['gemm_gflop_per_s']:.0f}" if r["gemm_gflop_per_s"] else "n/a"
            share = f"{100 * r['of_gemm']:.0f}%" if r["of_gemm"] else "n/a"
            lines.append(f"| {r['label']} | {r['persons']} | {r['precision']} | {r['p50_ms']:.1f} | "
                         f"{r['p90_ms']:.1f} | {r['frames_per_s']:.2f} | {r['persons_per_s']:.1f} | {speedup:.2f}× | "
                         f"{r['gflop_per_s']:.0f} | {peak} | {share} |")  # fmt: skip
    reasons = {r["path"]: r["reason"] for r in rows if r["reason"]}
    lines += ["", "What each emoedge row ran (its backend's `reason`):", ""]
    lines += [f"- {paths[k][0]}: {v}" for k, v in reasons.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["paper", "edge"], choices=["paper", "edge"])
    parser.add_argument("--persons", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--target-persons", type=int, default=4, help="N at which the 4× target is judged")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per point, about (at least 7 calls)")
    parser.add_argument("--no-accuracy", action="store_true", help="skip the sample model's mAP per path")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument(
        "--resume", action="store_true",
        help="keep the sample mAPs and the models already measured by an interrupted run (its .partial.json)",
    )  # fmt: skip
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=EmoticWarning)
    meta = {"machine": describe()}
    started = time.perf_counter()
    paths = paths_here()
    rows: list[dict] = []
    asyncs: dict[str, dict] = {}
    maps: dict[str, float] | None = None
    partial = args.out / "openvino_cpu.partial.json"
    if args.resume and partial.is_file():  # each part was measured in one run of its own: compare within a model
        kept = json.loads(partial.read_text())
        maps, rows, asyncs = kept["sample_map"], kept["rows"], kept["async"]
        meta["resumed"] = sorted(asyncs)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emoedge-openvino-") as name:
        tmp = Path(name)
        root = write_sample(tmp / "data")
        calib = tmp / "calib"
        calib.mkdir()
        for image in sorted((root / "emotic").rglob("*.jpg"))[:CALIB_IMAGES]:
            shutil.copy(image, calib / image.name)
        if maps is None:
            maps = {} if args.no_accuracy else sample_accuracy(tmp, root)
            atomic_write_text(partial, json.dumps({"sample_map": maps, "rows": rows, "async": asyncs}))
        for model in args.models:
            if model in asyncs:
                continue
            files = prepare(model, tmp, calib)
            rows += [{"model": model, **row} for row in time_model(files, args.persons, args.seconds, paths)]
            asyncs[model] = async_frames(files["onnx"], 4, args.seconds)
            print(f"{model}: {asyncs[model]}", flush=True)
            for kind in ("onnx", "int8cpu", "ir-int8"):
                shutil.rmtree(files[kind]) if files[kind].is_dir() else files[kind].unlink()
            atomic_write_text(partial, json.dumps({"sample_map": maps, "rows": rows, "async": asyncs}))
    goals = verdicts(rows, maps, args.models, args.persons, args.target_persons, paths)
    meta["seconds_total"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "openvino_cpu"
    report = {"meta": meta, "targets": goals, "sample_map": maps, "async": asyncs, "rows": rows}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(report, indent=2))
    atomic_write_text(stem.with_suffix(".md"), markdown(meta, rows, maps, goals, asyncs, paths, args.target_persons))
    partial.unlink(missing_ok=True)
    print(f"written {stem}.md and .json in {meta['seconds_total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
