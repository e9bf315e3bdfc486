"""A training run killed at any moment leaves nothing behind once resumed: temporary checkpoint files are removed,
best.pt agrees with what last.pt records, and loader workers die with the trainer instead of outliving it."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import psutil
from cli_helpers import REPO, Background, emoedge_command  # type: ignore[import-not-found]

from emoedge.formats.checkpoint import read_checkpoint

SAMPLE = REPO / "train" / "sample.yaml"
# PR_SET_PDEATHSIG kills workers at once (~0.05 s); without it torch's workers notice a dead parent only when their
# index queue has been idle for 5 s. A generous margin for a loaded machine, well below those 5 s.
WORKER_GRACE_S = 1.0


def _train(sample_root: Path, out: Path, *extra: str) -> Background:
    """`emoedge train sample --resume` in the background (a first start finds nothing to resume and starts anew),
    its output appended to the logs beside `out`."""
    args = ["train", str(SAMPLE), "--data", str(sample_root), "--out", str(out), "--quiet", "--resume", *extra]
    return Background(emoedge_command(*args), out.with_name(f"{out.name}-logs"))


def _temps(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*.tmp"))


def _kill(run: Background, out: Path, temp: str | None, delay: float) -> None:
    """SIGKILL `run`: with `temp` None, `delay` s after it started (in start-up); else `delay` s after it printed
    the line it prints just before training (`temp` "") or after a file matching the glob `temp` appeared in `out`
    (with `delay` 0, a write in progress)."""
    if temp is not None:
        run.wait_until(lambda: "resum" in run.stdout, "'resuming' line")
    deadline = time.monotonic() + 60  # a write too quick for the polling to see is not waited for forever
    while temp and not list(out.glob(temp)) and run.returncode is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(delay)
    assert run.returncode is None, f"the run ended before the kill: {run.stderr[-2000:]}"
    run.send(signal.SIGKILL)
    assert run.wait(30) == -signal.SIGKILL


def test_runs_killed_at_random_moments_resume_without_temp_files(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rng = random.Random(7)
    moments = [
        (None, rng.uniform(0.5, 2.5)),  # start-up
        ("", rng.uniform(0.0, 8.0)),  # training: in a step, a validation, a write
        ("", rng.uniform(0.0, 8.0)),
        (".*.pt.*.tmp", 0.0),  # writing a checkpoint
        ("last.pt", rng.uniform(0.0, 8.0)),  # in a later epoch: the next run resumes from a checkpoint
    ]
    rng.shuffle(moments)
    for temp, delay in moments:  # 50 epochs: no run can end before its kill, whatever the machine
        _kill(_train(sample_root, out, "optim.epochs=50", "data.workers=1"), out, temp, delay)
    out.mkdir(exist_ok=True)
    (out / ".last.pt.deadbeef.tmp").write_bytes(b"")  # what a kill between creating and renaming leaves, for sure
    done = read_checkpoint(out / "last.pt")["epoch"] + 1 if (out / "last.pt").exists() else 0

    run = _train(sample_root, out, f"optim.epochs={done + 1}", "data.workers=1")  # resumed: one more epoch
    assert run.wait(600) == 0, run.stderr[-2000:]
    assert "temporary file(s) a stopped run left" in run.stdout + run.stderr
    assert _temps(out) == []
    last, best = read_checkpoint(out / "last.pt"), read_checkpoint(out / "best.pt")
    assert last["epoch"] == done and len(last["history"]) == done + 1
    assert best["val_map"] == last["best_map"] == max(row["val_map"] for row in last["history"])
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + done + 1


def test_loader_workers_die_with_a_killed_trainer(sample_root: Path, tmp_path: Path) -> None:
    run = _train(sample_root, tmp_path / "run", "optim.epochs=50", "data.workers=2")
    trainer = psutil.Process(run.process.pid)
    deadline = time.monotonic() + 120
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and len(workers) < 2 and run.returncode is None:
        workers = [c for c in trainer.children(recursive=True) if _running(c)]
        time.sleep(0.2)
    assert len(workers) >= 2, "the trainer never started its loader workers"
    killed = time.monotonic()
    run.send(signal.SIGKILL)
    alive = workers
    while alive and time.monotonic() - killed < WORKER_GRACE_S:
        alive = [w for w in alive if _running(w)]
        time.sleep(0.01)
    run.wait(30)
    for worker in alive:  # leave nothing behind, whatever the outcome
        worker.kill()
    assert alive == [], f"{len(alive)} loader worker(s) outlived the trainer by {WORKER_GRACE_S} s"


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (a dead worker stays a zombie until whoever adopted it reaps it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
