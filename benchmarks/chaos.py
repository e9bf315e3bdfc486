"""The chaos run of tests/serve/test_chaos.py for longer (default 10 minutes), with its figures: per component, the
outages and the seconds from its return to tagging again (p50, max); the run's memory, file descriptors and threads
at the start and the end. Needs the serving set (`make setup SET=serve`: PyTriton) and Debian's GStreamer RTSP server
and mosquitto.

    .venv-serve/bin/python benchmarks/chaos.py [--minutes 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the chaos run and the servers' helpers are the test's own

from serve.test_chaos import Report, chaos  # noqa: E402

from emoedge.bench.machine import describe, machine_line  # noqa: E402
from emoedge.fileio import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = chaos(Path(folder), args.minutes * 60, args.seed)
    machine = describe()
    data = {"machine": machine, "minutes": args.minutes, "seed": args.seed, "outages": report.outages,
            "start": report.start, "end": report.end, "received": report.received, "summary": report.summary}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "chaos_cpu.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(RESULTS / "chaos_cpu.md", markdown(machine, args, report))
    print((RESULTS / "chaos_cpu.md").read_text())
    return 0


def markdown(machine: dict[str, Any], args: argparse.Namespace, report: Report) -> str:
    s, start, end = report.summary, report.start, report.end
    lines = [
        "# Chaos: cameras, broker and the model's server killed and restarted while a run goes on",
        "",
        f"{machine_line(machine, ('torch',))}. {args.minutes:g} minutes, seed {args.seed}: `emoedge run --http` of "
        "3 RTSP cameras (GStreamer's test server, 15 FPS) and a video file, boxes files, the sample model (random "
        "weights, ONNX) served by `emoedge serve` (Triton, gRPC), events to mosquitto (QoS 1). Each round takes "
        'every component down once, in a seeded order, for 3-8 s, 4-10 s apart. "back": seconds from the '
        "component's return (the camera's server listening, the broker accepting, the model's server answering) to "
        "the run tagging again (that camera's frames, messages at the subscriber, events in the log).",
        "",
        "| component | outages | back p50 (s) | back max (s) |",
        "| --- | --- | --- | --- |",
    ]
    for component in sorted({o["component"] for o in report.outages}):
        back = [o["back_s"] for o in report.outages if o["component"] == component]
        lines.append(f"| {component} | {len(back)} | {statistics.median(back):.2f} | {max(back):.2f} |")
    growth = (end["rss_kib"] - start["rss_kib"]) / start["rss_kib"]
    lines += [
        "",
        "| | start | end |",
        "| --- | --- | --- |",
        f"| resident memory (MiB) | {start['rss_kib'] / 1024:.0f} | {end['rss_kib'] / 1024:.0f} ({growth:+.1%}) |",
        f"| file descriptors | {start['fds']} | {end['fds']} |",
        f"| threads | {start['threads']} | {end['threads']} |",
        "",
        f"Summary: outcome {s['outcome']}, {s['frames']} frames, {s['events']} events; model outages "
        f"{s['model_outages']} ({s['model_outage_s']:.1f} s, {s['untagged_frames']} frames untagged); MQTT "
        f"{s['published']} acknowledged, {s['dropped']} dropped, {s['undelivered']} undelivered; "
        f"{report.received} distinct events at the subscriber.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
