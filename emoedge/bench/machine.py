"""The machine a benchmark ran on, and whether it is quiet enough to measure.

Why the quiet check: PyTorch's OpenMP threads, one per core, stall at every barrier when another process takes a
core, which makes a shared machine's figures meaningless (measured here: 10-50x slower), not just noisier.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

QUIET = 0.15  # CPU busy fraction (other processes) under which a point is measured
# Distributions whose versions a description lists, those installed; a benchmark's report names the ones it used.
LIBRARIES = ("emoedge", "torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "nvidia-modelopt",
             "ultralytics", "openvino", "nvidia-pytriton", "opencv-python-headless", "opencv-python", "numpy")  # fmt: skip


def describe() -> dict[str, Any]:
    """CPU model, cores (all, and those this process may use), torch threads, BF16 support, GPU, library versions,
    Python, and the git commit when run from a checkout."""
    import torch

    from emoedge.backends.torch import cpu_bf16_feature

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(), "cores": os.cpu_count(), "usable_cores": usable, "torch_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_bf16_feature(), "gpu": gpu, "python": platform.python_version(),
        "platform": platform.platform(), "libraries": versions, "commit": git_commit(),
    }  # fmt: skip


def machine_line(machine: dict[str, Any], libraries: tuple[str, ...] | None = None) -> str:
    """A description (`describe()`) as one line of a report; `libraries`: the distributions to name (those
    installed), all when None."""
    names = machine["libraries"] if libraries is None else [n for n in libraries if n in machine["libraries"]]
    libs = "".join(f", {n} {machine['libraries'][n]}" for n in names)
    return (
        f"{machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), {machine['torch_threads']} "
        f"torch threads, CPU BF16: {machine['cpu_bf16'] or 'none'}, GPU: {machine['gpu'] or 'none'}; "
        f"Python {machine['python']}{libs}" + (f"; commit {machine['commit']}" if machine["commit"] else "")
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The checkout's commit (with "+changes" when the tree differs), or None outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if dirty else "")


def cpu_busy(interval: float = 0.5) -> float | None:
    """Fraction of the machine's CPU time spent busy over `interval` while this process sleeps (Linux), else None."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except OSError:
        return None
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet(limit: float) -> float | None:
    """Wait (at most `limit` s) until other work leaves the CPU nearly idle; returns the busy fraction measured last."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    while busy is not None and busy > QUIET and time.monotonic() < deadline:
        time.sleep(2.0)
        busy = cpu_busy()
    return busy
