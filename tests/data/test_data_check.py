"""`check_dataset`: correct counts on the sample, fatal problems for missing images or annotations."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np

from emoedge.categories import CATEGORIES, CATEGORY_INDEX
from emoedge.data.check import check_dataset, format_report

SPLITS = ("train", "val", "test")
SAMPLE_SKIPPED = {"train": 3, "val": 1, "test": 1}


def _csv_counts(root: Path, split: str) -> tuple[int, int, np.ndarray]:
    """Images, persons and per-category positives counted straight from the preprocessed CSV."""
    with open(root / "emotic_pre" / f"{split}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    positives = np.zeros(len(CATEGORIES), dtype=int)
    for row in rows:
        for name in set(ast.literal_eval(row["Categorical_Labels"])):
            positives[CATEGORY_INDEX[name]] += 1
    return len({(r["Folder"], r["Filename"]) for r in rows}), len(rows), positives


def test_counts_on_the_sample(sample_root: Path) -> None:
    report = check_dataset(sample_root)
    assert report.problems == [] and report.fatal == []
    assert list(report.splits) == list(SPLITS)
    for split in SPLITS:
        s = report.splits[split]
        images, persons, positives = _csv_counts(sample_root, split)
        assert (s.images, s.persons) == (images, persons)
        assert s.positives == tuple(positives)
        assert (s.skipped, s.clipped, s.missing_images) == (SAMPLE_SKIPPED[s.split], 1, ())
        assert s.bad_boxes == s.undecodable_images == ()
        assert s.source.endswith("Annotations.mat")
    assert report.splits["train"].images == 95  # 96 images, one of them without a labelled person
    text = format_report(report)
    assert "no problems found" in text
    train = report.splits["train"]
    row = ["train", "95", str(train.persons), "3", "0", "1", "0", "0"]  # skipped, bad boxes, clipped, missing, ...
    assert row in [line.split() for line in text.splitlines()]
    assert any(line.startswith("Doubt/Confusion ") for line in text.splitlines())


def test_csv_format_counts_the_same_persons(sample_root: Path) -> None:
    by_mat, by_csv = check_dataset(sample_root, "mat"), check_dataset(sample_root, "csv")
    for split in SPLITS:
        assert by_csv.splits[split].positives == by_mat.splits[split].positives
        assert by_csv.splits[split].skipped == 0  # the preprocessed files hold only usable persons


def test_a_deleted_image_is_fatal_and_named(data_sample_copy: Path) -> None:
    victim = data_sample_copy / "emotic" / "framesdb" / "images" / "emoedge_test_0005.jpg"
    victim.unlink()
    report = check_dataset(data_sample_copy)
    assert report.splits["test"].missing_images == (str(victim),)
    assert len(report.fatal) == 1 and str(victim) in report.fatal[0] and report.fatal[0].startswith("test:")
    assert "FATAL" in format_report(report) and str(victim) in format_report(report)


def test_missing_annotations_are_fatal_for_every_split(tmp_path: Path) -> None:
    report = check_dataset(tmp_path)
    assert len(report.fatal) == 3 and report.splits == {}
    assert all("Annotations.mat" in p for p in report.fatal)
    assert "problems (3 fatal)" in format_report(report)


def test_a_category_without_positives_is_reported_but_not_fatal(data_sample_copy: Path) -> None:
    path = data_sample_copy / "emotic_pre" / "val.csv"
    text = path.read_text().replace("'Yearning', ", "").replace(", 'Yearning'", "").replace("'Yearning'", "'Peace'")
    path.write_text(text)
    report = check_dataset(data_sample_copy, "csv")
    assert report.fatal == []
    assert report.splits["val"].positives[CATEGORY_INDEX["Yearning"]] == 0
    assert any(p.startswith("val: no positives for 1 category (Yearning)") for p in report.problems)
