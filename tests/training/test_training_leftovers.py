"""A training run killed at any moment leaves nothing behind once resumed: temporary checkpoint files are removed,
and loader workers die with the trainer instead of outliving it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from cli_helpers import REPO  # type: ignore[import-not-found]

SAMPLE = REPO / "train" / "sample.yaml"
WORKER_GRACE_S = 0.5  # PR_SET_PDEATHSIG kills them at once; torch's own watchdog alone takes seconds


def _train(sample_root: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = ["train", str(SAMPLE), "--data", str(sample_root), "--out", str(out), "--quiet", "--resume", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "emoedge", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _temps(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".*.tmp"))


def test_runs_killed_at_random_moments_resume_without_temp_files(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rng = random.Random(7)
    for _ in range(3):
        proc = _train(sample_root, out, "optim.epochs=3", "data.workers=0")
        time.sleep(rng.uniform(3.0, 9.0))  # start-up is ~3 s: a kill during set-up, an epoch or a checkpoint write
        proc.kill()
        proc.communicate(timeout=30)
    out.mkdir(exist_ok=True)
    (out / ".last.pt.deadbeef.tmp").write_bytes(b"")  # what a kill between creating and renaming leaves
    proc = _train(sample_root, out, "optim.epochs=3", "data.workers=0")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    assert _temps(out) == []
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()


def test_loader_workers_die_with_a_killed_trainer(sample_root: Path, tmp_path: Path) -> None:
    proc = _train(sample_root, tmp_path / "run", "optim.epochs=50", "data.workers=2")
    trainer = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [c for c in trainer.children(recursive=True) if c.is_running()]
        time.sleep(0.2)
    assert len(workers) >= 2, "the trainer never started its loader workers"
    killed = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    alive = workers
    while alive and time.monotonic() - killed < WORKER_GRACE_S:
        alive = [w for w in alive if _running(w)]
        time.sleep(0.01)
    print(f"loader workers gone {time.monotonic() - killed:.3f} s after the trainer was killed")
    proc.communicate(timeout=30)
    assert alive == [], f"{len(alive)} loader worker(s) outlived the trainer by {WORKER_GRACE_S} s"


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (a dead worker stays a zombie until whoever adopted it reaps it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
