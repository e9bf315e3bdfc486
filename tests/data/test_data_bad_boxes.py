"""Unusable person boxes (not finite, inverted, wholly outside the image) and images that are not images: skipped
and counted when a split is read (training never sees them), listed as problems by `data check`."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import pytest

from emoedge.data.check import check_dataset
from emoedge.data.emotic import EmoticWarning, image_path, load_split
from emoedge.data.records import box_problem


@pytest.mark.parametrize(
    ("box", "problem"),
    [
        ((float("nan"), 1, 9, 9), "is not finite"),
        ((1, 1, float("inf"), 9), "is not finite"),
        ((9, 1, 2, 9), "x2 <= x1"),
        ((1, 9, 9, 9), "y2 <= y1"),
        ((500, 400, 600, 500), "outside the 160x120 image"),
        ((-50, -50, 0, 10), "outside"),
        ((1, 1, 9, 9), None),
        ((-5, -5, 500, 500), None),  # partly outside: clipped, not dropped
    ],
)
def test_box_problems_are_named(box, problem) -> None:
    found = box_problem(tuple(float(v) for v in box), 160, 120)
    assert found == problem if problem is None else problem in found


def _with_train_box(src: Path, dst: Path, box: str) -> Path:
    shutil.copytree(src, dst)
    path = dst / "emotic_pre" / "train.csv"
    rows = list(csv.DictReader(path.read_text().splitlines()))
    rows[0]["BBox"] = box
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dst


@pytest.mark.parametrize("box", ["[nan, 9, 67, 107]", "[67, 9, 11, 107]", "[500, 400, 600, 500]"])
def test_a_bad_box_is_skipped_when_read_and_fatal_in_data_check(sample_root, tmp_path, box) -> None:
    root = _with_train_box(sample_root, tmp_path / "d", box)
    clean = load_split(sample_root, "train", "csv")
    with pytest.warns(EmoticWarning, match=r"1 with an unusable box \(first: .*train.csv line 2: box"):
        data = load_split(root, "train", "csv")
    assert len(data.records) == len(clean.records) - 1 and len(data.bad_boxes) == 1
    report = check_dataset(root, "csv")
    assert any("train: 1 person(s) with an unusable box" in p and "line 2" in p for p in report.fatal)


def test_a_text_file_named_jpg_is_not_an_image(sample_root, tmp_path) -> None:
    root = tmp_path / "d"
    shutil.copytree(sample_root, root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoticWarning)
        victim = image_path(root, load_split(root, "val").records[0])
    victim.write_text("just text")
    report = check_dataset(root)
    assert [p for p in report.fatal if "not decodable images" in p and victim.name in p]
    assert not check_dataset(sample_root).fatal
