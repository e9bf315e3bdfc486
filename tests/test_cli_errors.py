"""Bad input: exit status 2 and one clear line naming the problem, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import scipy.io
import torch
from cli_helpers import REPO, assert_one_line_error, run_cli  # type: ignore[import-not-found]

from emoedge.data.emotic import image_path, load_split

SAMPLE = str(REPO / "train" / "sample.yaml")


def test_missing_annotations_mat(tmp_path):
    proc = run_cli("train", SAMPLE, "--data", str(tmp_path), "--out", str(tmp_path / "run"), "data.format=mat")
    assert_one_line_error(proc, "Annotations.mat")


def test_mat_without_train(tmp_path):
    (tmp_path / "Annotations").mkdir()
    scipy.io.savemat(tmp_path / "Annotations" / "Annotations.mat", {"val": [1, 2]})
    proc = run_cli("train", SAMPLE, "--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, "train")


def test_missing_image_file(sample_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(sample_root, root)
    victim = image_path(root, load_split(root, "train").records[0])
    victim.unlink()
    proc = run_cli("train", SAMPLE, "--data", str(root), "--out", str(tmp_path / "run"), "optim.epochs=1")
    assert_one_line_error(proc, victim.name)


def test_recipe_with_unknown_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {SAMPLE}\noptim:\n  learning_rate: 0.1\n")
    assert_one_line_error(run_cli("train", str(recipe), "--data", str(tmp_path)), "optim.learning_rate", "unknown key")


def test_recipe_with_wrong_type(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {SAMPLE}\noptim:\n  epochs: many\n")
    assert_one_line_error(run_cli("train", str(recipe), "--data", str(tmp_path)), "optim.epochs", "expected int")


def test_truncated_checkpoint(sample_root, tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"format": "emoedge-checkpoint", "model": {"w": torch.zeros(1000)}}, good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:2000])
    assert_one_line_error(run_cli("eval", str(bad), "--data", str(sample_root)), "bad.pt", "truncated")


class _Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_pickled_object_is_refused_without_running_it(sample_root, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "emoedge-checkpoint", "payload": _Payload(marker)}, evil)
    proc = run_cli("eval", str(evil), "--data", str(sample_root))
    assert_one_line_error(proc, "evil.pt", "pickled")
    assert not marker.exists()


def test_not_a_checkpoint(sample_root, tmp_path):
    other = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, other)
    assert_one_line_error(run_cli("eval", str(other), "--data", str(sample_root)), "not an emoedge training checkpoint")
