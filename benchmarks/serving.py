"""Per-frame latency of a model run locally (ONNX Runtime) against the same ONNX file served by `emoedge serve`
(Triton through PyTriton) on localhost, over gRPC and HTTP, for N persons per frame; and the throughput of several
concurrent gRPC clients against one server.

Why: the Triton path adds serialisation, two hops (client → Triton → the serving process's Python model) and a copy
through shared memory; on a GPU server that cost buys batching across cameras and a GPU for thin edge boxes, and
this measures what it costs per frame. Models: shipped recipes with random weights (latency does not depend on them).
Dynamic batching is OFF: one request is F frames and N persons, not one batch dimension (emoedge.formats.triton);
the server runs one model instance, so concurrent requests queue, and the throughput row shows what that gives.

Runs in the serving library set (numpy < 2, PyTriton): `.venv-serve/bin/python benchmarks/serving.py`.

    python benchmarks/serving.py [--models sample edge] [--persons 1 4] [--clients 4] [--seconds 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from emoedge.backends import load_model
from emoedge.bench.machine import describe, machine_line
from emoedge.bench.models import random_checkpoint
from emoedge.bench.timing import interleaved, summarise
from emoedge.export.onnx import example_inputs, export_onnx
from emoedge.fileio import atomic_write_text

LIBRARIES = ("onnxruntime", "onnxruntime-gpu", "nvidia-pytriton")  # the ones the report names
PATHS = {"local": "ONNX Runtime in this process", "grpc": "Triton, gRPC", "http": "Triton, HTTP"}


class Served:
    """`emoedge serve MODEL` on free localhost ports, for the duration of a `with`."""

    def __init__(self, model: Path, log: Path) -> None:
        ports = []
        for _ in range(3):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.grpc, self.http = f"grpc://127.0.0.1:{ports[0]}/emo", f"http://127.0.0.1:{ports[1]}/emo"
        self.argv = [sys.executable, "-m", "emoedge", "serve", str(model), "--name", "emo", "--grpc-port",
                     str(ports[0]), "--http-port", str(ports[1]), "--metrics-port", str(ports[2]), "--log", str(log)]  # fmt: skip

    def __enter__(self) -> Served:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.process.stdout:  # type: ignore[union-attr]
            if line.startswith("serving "):
                return self
        raise RuntimeError(f"emoedge serve ended before serving (status {self.process.wait()})")

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


def server_version(served: Served) -> str:
    """The version the server reports (Triton's, inside PyTriton's wheel)."""
    import tritonclient.grpc

    address = served.grpc.removeprefix("grpc://").rsplit("/", 1)[0]
    return tritonclient.grpc.InferenceServerClient(address).get_server_metadata(as_json=True)["version"]


def latency(model: Path, served: Served, persons: list[int], seconds: float) -> list[dict]:
    """Interleaved per-call times of every (path, N): the same inputs locally and through the server."""
    backends = {"local": load_model(model, device="cpu"), "grpc": load_model(served.grpc),
                "http": load_model(served.http)}  # fmt: skip
    points = {}
    for n in persons:
        image, body = (t.numpy() for t in example_inputs(backends["local"].card, n, seed=n))
        for key, backend in backends.items():
            points[key, n] = functools.partial(backend.infer, image, body)
    times = interleaved(points, seconds * len(points))
    return [{"path": key, "label": PATHS[key], "persons": n, **summarise(t, n)} for (key, n), t in times.items()]


def throughput(served: Served, clients: int, persons: int, seconds: float) -> dict:
    """Frames per second of `clients` threads, each its own gRPC client sending one frame after another."""
    backends = [load_model(served.grpc) for _ in range(clients)]
    image, body = (t.numpy() for t in example_inputs(backends[0].card, persons, seed=persons))
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        while time.perf_counter() < stop:
            backends[i].infer(image, body)
            counts[i] += 1

    for backend in backends:  # warm-up: every connection open and the model's first calls done
        backend.infer(image, body)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return {"clients": clients, "persons": persons, "frames": sum(counts), "seconds": elapsed,
            "frames_per_s": sum(counts) / elapsed, "per_client": counts}  # fmt: skip


def markdown(result: dict) -> str:
    lines = [
        "# Local ONNX Runtime against Triton (`emoedge serve`) on localhost",
        "",
        f"{machine_line(result['machine'], LIBRARIES)} (Triton {result['triton_server']}). Server and clients share "
        "these cores. Dynamic batching off (one request is F frames and N persons: no shared batch dimension); one "
        "model instance.",
        "",
        "## Per-frame latency (p50 / p90 ms)",
        "",
        "| model | N | " + " | ".join(PATHS.values()) + " | Triton gRPC overhead |",
        "| --- | ---: | " + " | ".join("---:" for _ in PATHS) + " | ---: |",
    ]
    for model, rows in result["latency"].items():
        for n in sorted({r["persons"] for r in rows}):
            by = {r["path"]: r for r in rows if r["persons"] == n}
            cells = " | ".join(f"{by[k]['p50_ms']:.2f} / {by[k]['p90_ms']:.2f}" for k in PATHS)
            gap = by["grpc"]["p50_ms"] - by["local"]["p50_ms"]
            lines.append(f"| {model} | {n} | {cells} | +{gap:.2f} ms |")
    lines += ["", f"## Throughput: concurrent gRPC clients, {result['seconds']:.0f} s each", "",
              "| model | clients | N | frames/s | one client's frames/s | per client |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for model, rows in result["throughput"].items():
        one = {r["persons"]: r for r in rows if r["clients"] == 1}
        for r in rows:
            if r["clients"] > 1:
                lines.append(f"| {model} | {r['clients']} | {r['persons']} | {r['frames_per_s']:.1f} | "
                             f"{one[r['persons']]['frames_per_s']:.1f} | {r['per_client']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["sample", "edge"], help="shipped recipes")
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 4], help="persons per frame")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the throughput row")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per point, about")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    result = {"machine": describe(), "seconds": 4 * args.seconds, "triton_server": None, "latency": {},
              "throughput": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            checkpoint = random_checkpoint(Path(tmp) / f"{name}.pt", name)
            model = export_onnx(checkpoint, Path(tmp) / f"{name}.onnx").path
            with Served(model, Path(tmp) / f"{name}.log") as served:
                result["triton_server"] = server_version(served)
                result["latency"][name] = latency(model, served, args.persons, args.seconds)
                result["throughput"][name] = [
                    throughput(served, clients, n, 4 * args.seconds) for n in args.persons for clients in
                    (1, args.clients)
                ]  # fmt: skip
            print(json.dumps({"model": name, "latency": result["latency"][name],
                              "throughput": result["throughput"][name]}), flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "serving_cpu.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "serving_cpu.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
