"""Training on the sample dataset: it learns, fusion helps, resume is exact, DDP works."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import REPO, run_cli  # type: ignore[import-not-found]

from emoedge.config import load_recipe
from emoedge.data.emotic import load_split
from emoedge.errors import EmoedgeError
from emoedge.evaluation.evaluate import evaluate_model, write_evaluation
from emoedge.formats.checkpoint import read_checkpoint
from emoedge.training.evaluate import resolve_device
from emoedge.training.trainer import train

SAMPLE = REPO / "train" / "sample.yaml"


@pytest.fixture(scope="module")
def runs(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample recipe trained twice: the full attention model and the body branch alone."""
    out = {}
    for name, overrides in {"attention": [], "body": ["model.branches=[body]"]}.items():
        recipe = load_recipe(SAMPLE, overrides)
        out[name] = train(recipe, tmp_path_factory.mktemp(name), data_root=sample_root, progress=False).best
    return out


def test_sample_model_is_far_above_a_random_scorer(runs, sample_root):
    result = evaluate_model(runs["attention"], sample_root, split="test", progress=False)
    card, paths = result.card, write_evaluation(runs["attention"].parent / "eval", result)
    labels = np.stack([r.multi_hot() for r in load_split(sample_root, "test").records])
    chance = labels.mean(0).mean()  # a random scorer's expected AP is the prevalence of each category
    assert result.m_ap >= 2 * chance, (result.m_ap, chance)
    assert {"results.json", "table1.md", "ap_per_category.png", "modality_weights.png"} <= {
        p.name for p in paths.values()
    }
    assert card.thresholds != (0.5,) * 26  # thresholds were chosen on the validation split


def test_attention_fusion_beats_the_body_branch_alone(runs, sample_root):
    fused = evaluate_model(runs["attention"], sample_root, split="test", progress=False)
    body = evaluate_model(runs["body"], sample_root, split="test", progress=False)
    assert fused.m_ap > body.m_ap + 0.02, (fused.m_ap, body.m_ap)


def test_run_folder_holds_logs_and_checkpoints(runs):
    run = runs["attention"].parent
    rows = (run / "metrics.csv").read_text().splitlines()
    recipe = load_recipe(SAMPLE)
    assert len(rows) == recipe.optim.epochs + 1 and "val_map" in rows[0]
    assert any((run / "tensorboard").iterdir())
    assert read_checkpoint(run / "last.pt")["epoch"] == recipe.optim.epochs - 1


def _train_args(sample_root: Path, out: Path, *extra: str) -> list[str]:
    """`emoedge train` on the sample recipe and dataset, quiet: the arguments after the program."""
    return ["train", str(SAMPLE), "--data", str(sample_root), "--out", str(out), "--quiet", *extra]


def _train_cmd(sample_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "emoedge.cli",
        *_train_args(sample_root, out, "optim.epochs=4", "data.workers=1", *extra),
    ]


# Trains like `emoedge train ... optim.epochs=4 data.workers=1` and kills itself with SIGKILL at an exact point: in
# the middle of the second epoch (epoch 1, after its second step), through the trainer's on_step hook.
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from emoedge.config import load_recipe
from emoedge.training.trainer import train

def hook(epoch, step):
    if (epoch, step) == (1, 1):
        os.kill(os.getpid(), signal.SIGKILL)

recipe = load_recipe(sys.argv[1], ["optim.epochs=4", "data.workers=1"])
train(recipe, Path(sys.argv[3]), data_root=Path(sys.argv[2]), progress=False, on_step=hook)
"""


def test_killed_run_resumes_to_the_same_weights(sample_root, tmp_path):
    whole = subprocess.run(_train_cmd(sample_root, tmp_path / "whole"), capture_output=True, text=True, cwd=REPO)
    assert whole.returncode == 0, whole.stderr[-2000:]

    last = tmp_path / "cut" / "last.pt"
    victim = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(SAMPLE), str(sample_root), str(tmp_path / "cut")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-2000:]
    assert read_checkpoint(last)["epoch"] == 0, "killed in the second epoch: the last checkpoint is the first's"

    resumed = subprocess.run(
        _train_cmd(sample_root, tmp_path / "cut", "--resume"), capture_output=True, text=True, cwd=REPO
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = read_checkpoint(tmp_path / "whole" / "last.pt"), read_checkpoint(last)
    assert a["epoch"] == b["epoch"] == 3
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    assert a["history"][-1]["val_map"] == b["history"][-1]["val_map"]


def test_existing_run_is_not_overwritten_without_resume(sample_root, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"precious")
    proc = run_cli("train", str(SAMPLE), "--data", str(sample_root), "--out", str(tmp_path / "run"), "optim.epochs=1")
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert (tmp_path / "run" / "last.pt").read_bytes() == b"precious"


def test_two_process_torchrun_gloo_trains_and_writes_one_checkpoint(sample_root, tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = _train_args(sample_root, out, "optim.epochs=1", "data.workers=0", "run.device=cpu")
    cmd = [*launcher, "--module", "emoedge.cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt"]
    saved = read_checkpoint(out / "last.pt")
    assert saved["epoch"] == 0 and len(saved["history"]) == 1


def test_an_unwritable_run_folder_is_one_line_before_any_work(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    recipe = load_recipe(SAMPLE)
    with pytest.raises(EmoedgeError, match=r"run folder .*blocker/run: cannot write there \(.*blocker is a file"):
        train(recipe, tmp_path / "blocker" / "run", data_root=tmp_path / "no-data-either", progress=False)


def test_resuming_with_fewer_epochs_than_trained_names_the_value(runs, sample_root):
    run = runs["attention"].parent
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    recipe = load_recipe(SAMPLE, ["optim.epochs=2"])
    done = load_recipe(SAMPLE).optim.epochs
    with pytest.raises(EmoedgeError, match=f"optim.epochs 2 is below the {done} epochs already trained") as exc:
        train(recipe, run, data_root=sample_root, resume=True, progress=False)
    assert "\n" not in str(exc.value)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before  # nothing written


def test_a_cuda_device_this_machine_lacks_is_one_line():
    with pytest.raises(EmoedgeError, match=r"run.device 'cuda:99': this machine has \d+ CUDA device"):
        resolve_device("cuda:99", "run.device")
