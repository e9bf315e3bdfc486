"""Which person-detector set-up is fastest on this machine: YOLO11n per Ultralytics export format and inference size.

Why: on a CPU the detector costs more than the emotion engine (see detector.py), and Ultralytics' own exporter makes
formats that run faster than its PyTorch weights on some machines (ONNX Runtime; OpenVINO on x86 CPUs; TensorRT
engines on NVIDIA GPUs). This script exports YOLO11n, built from its model YAML (weights cannot be downloaded here;
the speed does not depend on them), to ONNX and, where the `openvino` package is installed, to OpenVINO, at 640 and
320 px, and times `YoloFinder.find` (Ultralytics' pre-processing, inference and NMS: what `emoedge run` calls)
on a 640×480 frame, one format after the other. INT8 exports need calibration images Ultralytics downloads (coco8), so
they are not measured here.

    python benchmarks/detector_formats.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from emoedge.bench.machine import describe, machine_line, wait_for_quiet
from emoedge.bench.timing import interleaved, summarise
from emoedge.fileio import atomic_write_text
from emoedge.runtime.finders import YoloFinder
from emoedge.runtime.sources import Frame
from emoedge.runtime.yolo import import_ultralytics

SIZES = (640, 320)
LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "ultralytics", "openvino")  # the ones the report names
RESULTS = Path(__file__).parent / "results"


def export_all(folder: Path) -> dict[tuple[str, int], Path]:
    """{(format, size): weights} for PyTorch, ONNX and (if installed) OpenVINO at each size."""
    ultralytics = import_ultralytics()
    weights = folder / "yolo11n.pt"
    ultralytics.YOLO("yolo11n.yaml").save(weights)
    formats = ["onnx"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    files: dict[tuple[str, int], Path] = {}
    for size in SIZES:
        files["PyTorch", size] = weights
        for kind in formats:
            sized = folder / f"{size}"
            sized.mkdir(exist_ok=True)
            copy = sized / "yolo11n.pt"
            copy.write_bytes(weights.read_bytes())
            exported = ultralytics.YOLO(str(copy)).export(format=kind, imgsz=size, verbose=False)
            files["ONNX Runtime" if kind == "onnx" else "OpenVINO", size] = Path(exported)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per point, about")
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as folder:
        files = export_all(Path(folder))
        torch.set_num_threads(threads)  # Ultralytics' exporter sets its own count; the runtime keeps the process's
        points = {}
        for (kind, size), path in files.items():
            detector = YoloFinder(path, device="cpu", download=False, size=size)
            points[kind, size] = functools.partial(detector.find, [Frame(0, 0.0, image)])
        busy = wait_for_quiet(60.0)
        # One format at a time: ONNX Runtime's and OpenVINO's thread pools spin on after a call, so interleaving
        # formats in one process would charge one format's spinning threads to the next.
        times = {key: interleaved({key: call}, args.seconds)[key] for key, call in points.items()}
    rows = [{"format": kind, "size": size, **summarise(ms, 1)} for (kind, size), ms in times.items()]
    for row in rows:
        print(f"{row['format']} at {row['size']} px: p50 {row['p50_ms']:.1f} ms", flush=True)
    machine = describe()
    RESULTS.mkdir(exist_ok=True)
    payload = {"machine": machine, "busy_before": busy, "rows": rows}
    atomic_write_text(RESULTS / "detector_formats_cpu.json", json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Person detector per format and size — CPU",
        "",
        f"{machine_line(machine, LIBRARIES)}. YOLO11n (from its YAML), `YoloFinder.find` on one 640×480 frame: "
        "Ultralytics' pre-processing, inference and NMS.",
        "",
        "| format | size | p50 ms | p90 ms | frames/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r['format']} | {r['size']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['frames_per_s']:.1f} |"
              for r in sorted(rows, key=lambda r: r["p50_ms"])]  # fmt: skip
    atomic_write_text(RESULTS / "detector_formats_cpu.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
