"""`make gpu-check`: what one command can learn of emoedge on a GPU machine, written to
benchmarks/results/gpu-<GPU name>/ — the GPU tests under EMOEDGE_REQUIRE_GPU=1 (junit.xml, pytest.log),
`emoedge bench` of the edge and paper models (random weights: speed does not depend on them) on every backend
present, and summary.md (+ summary.json) with the versions and the counts.

Why one command: a GPU is at hand rarely (a lent machine for minutes, a user's Jetson), and every GPU path is only
verified where it ran, so running all of it must take no preparation and no judgement. Why it refuses at once without
a CUDA GPU, in one line naming what it checked: a check that skips everything and reports success would claim
verification that never happened. With a GPU but without TensorRT or ONNX Runtime's GPU providers it runs what it
can; their tests fail (EMOEDGE_REQUIRE_GPU=1), their benchmarks are left out, and the summary says what was missing.

Under 10 minutes on a desktop GPU: the tests have a time limit and the benchmarks share what is left of a deadline
(`--budget-s`); a step the deadline leaves no time for is listed as not run. The results folder is replaced as a whole
at the end (written as <folder>.partial until then), so it always describes one run.

    python benchmarks/gpu_check.py [--results benchmarks/results] [--budget-s 540]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_PATHS = ("tests/gpu", "tests/backends/test_backend_tensorrt.py", "tests/export/test_export_tensorrt.py")
BUDGET_S = 540.0  # everything, so that the check ends within 10 minutes
TESTS_LIMIT_S = 300.0  # the tests' share: tiny models, engines of a few MB (the AMP training step is the longest)
BENCH_LIMIT_S = 150.0  # one `emoedge bench` (an ONNX Runtime TensorRT engine build of the paper model included)
BUILD_LIMIT_S = 240.0  # one `emoedge export engine` of the paper model
BENCH_OPTIONS = ("--quiet", "--seconds", "1", "--frames", "20")  # short points: this is a check, not a study
MODELS = ("edge", "paper")  # the recipes issue 28's figures are for
NOT_YET = (
    "PyTorch, TensorRT-engine and ONNX Runtime CUDA rows: eager and CUDA graphs side by side (bench's `mode` column; "
    "PyTorch FP16, with the GPU memory the captured buckets hold), and each run's first 10 frames against its steady "
    "p50; 'compiled' is not measured here (`emoedge bench --compile` costs tens of seconds a shape)."
)
MADE_FIRST = {"checkpoint": (), "onnx": ("onnx",), "engine": ("onnx", "engine")}  # files a model kind is made from
ORT_PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


@dataclass(frozen=True)
class Machine:
    """What this machine offers emoedge's GPU paths (None: absent)."""

    gpu: str | None
    capability: str | None
    memory_gib: float | None
    driver: str | None
    torch: str
    cuda: str | None  # the CUDA torch was built with
    tensorrt: str | None
    onnxruntime: str | None  # "<distribution> <version>"
    providers: tuple[str, ...]
    modelopt: str | None
    python: str
    jetson: bool

    def missing(self) -> list[str]:
        """What a GPU check needs and this machine lacks, in the words of the refusal line."""
        named = {
            "no CUDA GPU": self.gpu is None,
            "no TensorRT": self.tensorrt is None,
            "no onnxruntime-gpu CUDA provider": ORT_PROVIDERS["cuda"] not in self.providers,
            "no onnxruntime-gpu TensorRT provider": ORT_PROVIDERS["tensorrt"] not in self.providers,
        }
        return [name for name, absent in named.items() if absent]

    def checked(self) -> str:
        """What was looked at and what was found, for the one refusal line."""
        build = f"CUDA {self.cuda} build" if self.cuda else "CPU-only build"
        ort = (
            f"{self.onnxruntime} lists {', '.join(self.providers)}" if self.onnxruntime else "onnxruntime not installed"
        )
        return (
            f"torch {self.torch} ({build}) torch.cuda.is_available() = {self.gpu is not None}; "
            f"TensorRT {self.tensorrt or 'not installed'}; {ort}"
        )


@dataclass
class Step:
    """One command of the check and how it ended."""

    name: str
    command: list[str]
    log: str
    status: str = "not run"  # "ok", "failed (exit N)", "timed out after S s", "not run: ..."
    seconds: float = 0.0
    report: str | None = None  # a bench's bench.md, relative to the results folder

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def slug(name: str) -> str:
    """A GPU name as a folder name: lower case, every run of other characters one '-' ('NVIDIA H200' →
    'nvidia-h200')."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"


def probe() -> Machine:
    """This machine's GPU, driver and library versions; imports nothing that starts CUDA without a GPU."""
    import torch

    gpu = capability = memory = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu, capability, memory = props.name, f"{props.major}.{props.minor}", round(props.total_memory / 2**30, 1)
    onnxruntime, providers = _onnxruntime()
    return Machine(
        gpu=gpu, capability=capability, memory_gib=memory, driver=_driver() if gpu else None,
        torch=torch.__version__, cuda=torch.version.cuda, tensorrt=_tensorrt(), onnxruntime=onnxruntime,
        providers=providers, modelopt=_version("nvidia-modelopt"), python=sys.version.split()[0],
        jetson=Path("/etc/nv_tegra_release").exists(),
    )  # fmt: skip


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tensorrt() -> str | None:
    """TensorRT's version; JetPack's apt-installed bindings may have no distribution metadata, so ask the module."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # installed but unusable (a missing libnvinfer): no TensorRT to test; pytest.log says why
        return None


def _onnxruntime() -> tuple[str | None, tuple[str, ...]]:
    for distribution in ("onnxruntime-gpu", "onnxruntime"):
        version = _version(distribution)
        if version:
            import onnxruntime

            return f"{distribution} {version}", tuple(onnxruntime.get_available_providers())
    return None, ()


def _driver() -> str | None:
    """The NVIDIA driver version (nvidia-smi, else the kernel module's line), or the L4T release on a Jetson."""
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=20, check=True).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    for path in (Path("/proc/driver/nvidia/version"), Path("/etc/nv_tegra_release")):
        if path.exists():
            return path.read_text().splitlines()[0].strip()
    return None


def run_step(step: Step, folder: Path, limit: float, env: dict[str, str] | None = None) -> Step:
    """Run `step.command` in the repository with its output to `folder/step.log`; after `limit` seconds, or when
    this script is interrupted, its whole process group (pytest's and bench's children too) is killed."""
    if limit < 10:
        step.status = "not run: the time budget was spent"
        return step
    start = time.monotonic()
    with open(folder / step.log, "w") as log:
        child = subprocess.Popen(step.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # fmt: skip
        try:
            code = child.wait(timeout=limit)
            step.status = "ok" if code == 0 else f"failed (exit {code})"
        except BaseException as exc:  # the time limit, or Ctrl-C (which a child in a session of its own does not get)
            os.killpg(child.pid, signal.SIGKILL)  # before the wait: the child is not reaped yet, its group id is ours
            child.wait()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            step.status = f"timed out after {limit:.0f} s"
    step.seconds = round(time.monotonic() - start, 1)
    print(f"  {step.name}: {step.status} ({step.seconds:.0f} s)", flush=True)
    return step


def junit_counts(junit: Path) -> dict[str, object]:
    """Passed/failed/errors/skipped and the failed tests' ids from pytest's junit XML (empty when it has none)."""
    if not junit.exists():
        return {}
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_tests"] = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return counts


def bench_plan(machine: Machine) -> list[tuple[str, str, str]]:
    """(backend label, model kind, --device) for every backend this machine has: a checkpoint on PyTorch, the ONNX
    on ONNX Runtime's GPU providers, an engine on TensorRT."""
    plan = [("torch-cuda", "checkpoint", "cuda")]
    plan += [(f"onnxruntime-{d}", "onnx", d) for d, provider in ORT_PROVIDERS.items() if provider in machine.providers]
    if machine.tensorrt:
        plan.append(("tensorrt-engine", "engine", "cuda"))
    return plan


def run_benches(machine: Machine, folder: Path, deadline: float, work: Path) -> list[Step]:
    """`emoedge bench` of each model on each backend present, in order, while the deadline allows; the ONNX file and
    the engine are made with `emoedge export` when a backend first needs them."""
    from emoedge.bench.models import random_checkpoint

    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "PYTHONUNBUFFERED": "1"}  # no stale ORT engines
    target = "jetson-orin" if machine.jetson else "desktop-gpu"
    steps: list[Step] = []

    def step(name: str, command: list[str], log: str, limit: float) -> Step:
        steps.append(run_step(Step(name, command, log), folder, min(limit, deadline - time.monotonic()), env))
        return steps[-1]

    for name in MODELS:
        files = {"checkpoint": random_checkpoint(work / f"{name}.pt", name, seed=0)}
        makers = {
            "onnx": ("checkpoint", ["export", "onnx"], []),
            # FP32: the one precision every TensorRT version builds from this ONNX (FP16 needs Model Optimizer's
            # FP16 ONNX on TensorRT >= 10.12); the tests cover FP16 and INT8 engines.
            "engine": ("onnx", ["export", "engine"], ["--target", target, "precision=fp32"]),
        }
        for label, kind, device in bench_plan(machine):
            for needed in MADE_FIRST[kind]:
                source, command, options = makers[needed]
                if needed not in files and source in files:
                    made = work / f"{name}.{needed}"
                    if step(f"{name}: {' '.join(command)}", _emoedge(*command, files[source], "-o", made, *options),
                            f"{name}-{needed}.log", BUILD_LIMIT_S).ok:  # fmt: skip
                        files[needed] = made
            if kind not in files:
                continue
            out = f"bench-{name}-{label}"
            precision = ("--precision", "fp16") if kind == "checkpoint" else ()  # the figures are FP16
            bench = step(f"{name}: bench {label}", _emoedge("bench", files[kind], "--device", device, *precision,
                         "-o", folder / out, *BENCH_OPTIONS), f"{out}.log", BENCH_LIMIT_S)  # fmt: skip
            if bench.ok:
                bench.report = f"{out}/bench.md"
    return steps


def _emoedge(*args: object) -> list[str]:
    return [sys.executable, "-m", "emoedge", *map(str, args)]


def summary_markdown(machine: Machine, tests: Step, counts: dict, benches: list[Step], took: float) -> str:
    """The run as Markdown: machine and versions, what was missing, test counts, one row per bench step."""
    m = machine
    lines = [
        f"# GPU check: {m.gpu}",
        "",
        f"- run: {datetime.now(timezone.utc).isoformat(timespec='seconds')}, commit {_commit() or 'unknown'}, "
        f"{took:.0f} s (`make gpu-check`)",
        f"- GPU: {m.gpu}, compute capability {m.capability}, {m.memory_gib} GiB; driver {m.driver or 'unknown'}"
        + ("; Jetson" if m.jetson else ""),
        f"- versions: Python {m.python}, torch {m.torch} (CUDA {m.cuda}), TensorRT {m.tensorrt or 'absent'}, "
        f"{m.onnxruntime or 'onnxruntime absent'} (providers: {', '.join(m.providers) or 'none'}), "
        f"nvidia-modelopt {m.modelopt or 'absent'}",
        f"- missing here: {', '.join(m.missing()) or 'nothing'}",
        "",
        "## Tests (EMOEDGE_REQUIRE_GPU=1: a skipped GPU test is a failure)",
        "",
        f"`pytest {' '.join(TEST_PATHS)}`: {tests.status} in {tests.seconds:.0f} s — "
        + (
            f"{counts['passed']} passed, {counts['failures']} failed, {counts['errors']} errors, "
            f"{counts['skipped']} skipped of {counts['tests']}"
            if counts
            else "no junit.xml"
        )
        + " (junit.xml, pytest.log)",
    ]
    lines += [f"- failed: `{name}`" for name in counts.get("failed_tests", [])]
    lines += ["", "## Benchmarks (`emoedge bench`, random weights)", "", "| step | status | s | report |"]
    lines += ["| --- | --- | ---: | --- |"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.report or s.log} |" for s in benches]
    lines += ["", NOT_YET, ""]
    return "\n".join(lines)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results", help="parent folder")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="seconds for the whole check, about")
    args = parser.parse_args(argv)
    start = time.monotonic()
    machine = probe()
    if machine.gpu is None:
        print(f"gpu-check: {', '.join(machine.missing())} here (checked: {machine.checked()}); nothing was run or "
              "written: run it on a machine with an NVIDIA GPU", file=sys.stderr)  # fmt: skip
        return 2
    final = args.results / f"gpu-{slug(machine.gpu)}"
    folder = final.with_name(final.name + ".partial")
    shutil.rmtree(folder, ignore_errors=True)  # a run that was killed before it finished
    folder.mkdir(parents=True)
    print(f"gpu-check on {machine.gpu}: results in {final}", flush=True)
    if len(machine.missing()) > 0:
        print(f"  missing here: {', '.join(machine.missing())} (their tests fail, their benchmarks are left out)")
    tests = Step("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TEST_PATHS,
                 f"--junitxml={folder / 'junit.xml'}"], "pytest.log")  # fmt: skip
    run_step(tests, folder, min(TESTS_LIMIT_S, args.budget_s), {**os.environ, "EMOEDGE_REQUIRE_GPU": "1"})
    counts = junit_counts(folder / "junit.xml")
    with tempfile.TemporaryDirectory(prefix="emoedge-gpu-check-") as work:
        benches = run_benches(machine, folder, start + args.budget_s, Path(work))
    took = time.monotonic() - start
    (folder / "summary.md").write_text(summary_markdown(machine, tests, counts, benches, took))
    record = {"machine": asdict(machine), "tests": {**asdict(tests), **counts},
              "benches": [asdict(s) for s in benches], "seconds": round(took, 1)}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    folder.rename(final)
    passed = tests.ok and all(s.ok for s in benches)
    print(f"gpu-check: {'passed' if passed else 'FAILED'}; {final / 'summary.md'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
