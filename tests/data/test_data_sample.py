"""The sample dataset: official layout, determinism, coverage, and labels learnable from body AND scene."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from emoedge.categories import CATEGORIES
from emoedge.data.dataset import read_image
from emoedge.data.emotic import EmoticWarning, image_path, load_split
from emoedge.data.records import PersonRecord
from emoedge.data.sample import (
    BODY_CATEGORIES,
    BODY_TYPES,
    SCENE_CATEGORIES,
    SCENE_MOODS,
    write_sample,
)
from emoedge.data.transforms import crop_box
from emoedge.errors import EmoedgeError

SPLITS = ("train", "val", "test")


def _records(root: Path, split: str) -> list[PersonRecord]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoticWarning)
        return load_split(root, split, "mat").records


def test_files_are_in_the_official_layout(sample_root: Path) -> None:
    mat = sample_root / "Annotations" / "Annotations.mat"
    assert {name: kind for name, _, kind in scipy.io.whosmat(str(mat))} == dict.fromkeys(SPLITS, "struct")
    for split in SPLITS:
        assert (sample_root / "emotic_pre" / f"{split}.csv").is_file()
    folders = {p.parent.relative_to(sample_root / "emotic").as_posix() for p in sample_root.glob("emotic/*/*/*.jpg")}
    assert folders == {"mscoco/images", "framesdb/images"}
    assert len(list(sample_root.glob("emotic/*/*/*.jpg"))) == 96 + 32 + 48


def test_mat_is_shaped_like_the_real_release(sample_root: Path) -> None:
    mat = scipy.io.loadmat(
        str(sample_root / "Annotations" / "Annotations.mat"), struct_as_record=False, squeeze_me=True
    )
    train, val = mat["train"], mat["val"]
    assert train.shape == (96,) and val.shape == (32,)
    assert set(train[0]._fieldnames) >= {"filename", "folder", "image_size", "original_database", "person"}
    assert set(train[0].image_size._fieldnames) == {"n_col", "n_row"}
    train_person = np.atleast_1d(train[0].person)[0]
    assert set(train_person._fieldnames) >= {
        "body_bbox",
        "annotations_categories",
        "annotations_continuous",
        "gender",
        "age",
    }
    val_person = np.atleast_1d(val[0].person)[0]
    assert {"combined_categories", "combined_continuous"} <= set(val_person._fieldnames)
    assert 2 <= len(val_person.annotations_categories) <= 3  # one struct per annotator
    counts = [np.atleast_1d(image.person).size for image in train]
    assert min(counts) == 1 and max(counts) >= 3


def test_same_seed_same_dataset_other_seed_other_dataset(tmp_path: Path) -> None:
    small = dict(images=(10, 8, 8), image_size=(96, 64))
    a = write_sample(tmp_path / "a", seed=5, **small)
    b = write_sample(tmp_path / "b", seed=5, **small)
    c = write_sample(tmp_path / "c", seed=6, **small)
    for split in SPLITS:
        assert _records(a, split) == _records(b, split) != _records(c, split)
        assert (a / "emotic_pre" / f"{split}.csv").read_bytes() == (b / "emotic_pre" / f"{split}.csv").read_bytes()
    images = sorted(p.relative_to(a) for p in a.glob("emotic/*/*/*.jpg"))
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in images)
    assert any((a / p).read_bytes() != (c / p).read_bytes() for p in images)


def test_scene_and_body_sets_partition_the_categories() -> None:
    assert set(CATEGORIES) == SCENE_CATEGORIES | BODY_CATEGORIES
    assert not SCENE_CATEGORIES & BODY_CATEGORIES
    assert len({m.color for m in SCENE_MOODS}) == len(SCENE_MOODS)
    assert len({b.color for b in BODY_TYPES}) == len(BODY_TYPES)


@pytest.mark.parametrize("split", SPLITS)
def test_every_category_has_positives_and_labels_mix_both_sources(sample_root: Path, split: str) -> None:
    records = _records(sample_root, split)
    positives = np.stack([r.multi_hot() for r in records]).sum(axis=0)
    assert positives.min() >= 3, dict(zip(CATEGORIES, positives))
    both = [set(r.categories) & BODY_CATEGORIES and set(r.categories) & SCENE_CATEGORIES for r in records]
    assert np.mean([bool(x) for x in both]) > 0.9
    # VAD follows the categories: the "party" persons are happier than the "mourning" ones.
    happy = [r.vad[0] for r in records if "Happiness" in r.categories]
    sad = [r.vad[0] for r in records if "Sadness" in r.categories]
    assert np.mean(happy) > np.mean(sad) + 1
    assert all(1 <= v <= 10 for r in records for v in r.vad)


def _colour_features(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std colour of each body crop and of its whole image, and the labels."""
    body, scene, labels = [], [], []
    for rec in _records(root, split):
        image = read_image(image_path(root, rec)).astype(np.float32) / 255.0
        x1, y1, x2, y2 = crop_box(rec.bbox, image.shape[1], image.shape[0])
        crop = image[y1:y2, x1:x2]
        body.append(np.concatenate([crop.mean(axis=(0, 1)), crop.std(axis=(0, 1))]))
        scene.append(np.concatenate([image.mean(axis=(0, 1)), image.std(axis=(0, 1))]))
        labels.append(rec.multi_hot())
    return np.array(body), np.array(scene), np.array(labels)


def _ridge_ap(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    """Per-category AP of a quadratic ridge regression (a tiny, exact stand-in for a trained model)."""
    from sklearn.metrics import average_precision_score

    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6

    def expand(x: np.ndarray) -> np.ndarray:
        x = (x - mean) / std
        return np.hstack([np.ones((len(x), 1)), x] + [x[:, i : i + 1] * x[:, i:] for i in range(x.shape[1])])

    a = expand(x_train)
    weights = np.linalg.solve(a.T @ a + np.eye(a.shape[1]), a.T @ y_train)
    scores = expand(x_test) @ weights
    return np.array([average_precision_score(y_test[:, k], scores[:, k]) for k in range(y_test.shape[1])])


def test_labels_are_learnable_from_body_and_scene_pixels_and_need_both(sample_root: Path) -> None:
    body_tr, scene_tr, y_tr = _colour_features(sample_root, "train")
    body_te, scene_te, y_te = _colour_features(sample_root, "test")
    body_only = _ridge_ap(body_tr, y_tr, body_te, y_te)
    fused = _ridge_ap(np.hstack([body_tr, scene_tr]), y_tr, np.hstack([body_te, scene_te]), y_te)
    is_scene = np.array([c in SCENE_CATEGORIES for c in CATEGORIES])
    assert fused.mean() > 0.85
    assert fused.mean() > body_only.mean() + 0.2
    assert body_only[~is_scene].mean() > 0.9  # the figure tells its own categories...
    assert body_only[is_scene].mean() < 0.4  # ...but not the scene's: no background leaks into the crop
    assert fused[is_scene].mean() > 0.85


@pytest.mark.parametrize(
    ("where", "options", "needle"),
    [
        ("blocker/sample", {}, "blocker is a file, not a folder"),
        ("ok", {"seed": -1}, "seed -1: expected an integer >= 0"),
        ("ok", {"images": (96, 4, 48)}, "each >= 8"),
        ("ok", {"image_size": (32, 24)}, "at least (64, 48)"),
    ],
)
def test_bad_arguments_are_one_line_before_any_file_is_written(tmp_path: Path, where, options, needle) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(EmoedgeError) as exc:
        write_sample(tmp_path / where, **options)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "ok").exists()
