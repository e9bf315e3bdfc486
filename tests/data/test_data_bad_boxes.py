"""Unusable person boxes (not finite, inverted, wholly outside the image), non-finite VAD and images that are not
images: decided when a split is read, the same for the .mat and the CSV layout. Such persons are skipped and counted
(training never sees them), `data check` calls them fatal and lists every one, and the loaders' record check refuses
an image file that is not an image before any work starts."""

from __future__ import annotations

import csv
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from emoedge.data.check import check_dataset, format_report
from emoedge.data.dataset import checked_records
from emoedge.data.emotic import CSV_COLUMNS, EmoticWarning, image_path, load_split
from emoedge.data.records import PersonRecord, box_problem
from emoedge.data.sample import _cell, _struct_array
from emoedge.errors import EmoedgeError

NAN, INF = float("nan"), float("inf")
WIDTH, HEIGHT = 64, 48
GOOD = (1.0, 2.0, 30.0, 40.0)
# (box, VAD, what `box_problem` says; None: kept) — one person each, all in one image of WIDTH x HEIGHT.
PERSONS: list[tuple[tuple[float, ...], tuple[float, ...], str | None]] = [
    (GOOD, (5.0, 6.0, 7.0), None),
    ((-5.0, -5.0, 90.0, 90.0), (5.0, 6.0, 7.0), None),  # partly outside: clipped, kept
    ((NAN, 2.0, 30.0, 40.0), (5.0, 6.0, 7.0), "is not finite"),
    ((1.0, 2.0, INF, 40.0), (5.0, 6.0, 7.0), "is not finite"),
    ((30.0, 2.0, 1.0, 40.0), (5.0, 6.0, 7.0), "x2 <= x1"),
    ((1.0, 40.0, 30.0, 40.0), (5.0, 6.0, 7.0), "y2 <= y1"),
    ((70.0, 50.0, 90.0, 60.0), (5.0, 6.0, 7.0), f"outside the {WIDTH}x{HEIGHT} image"),
    ((-20.0, 2.0, 0.0, 40.0), (5.0, 6.0, 7.0), "outside"),
    (GOOD, (5.0, INF, 7.0), None),  # an infinite VAD: skipped like a NaN one, not a bad box
]
BAD = [(k, problem) for k, (_, _, problem) in enumerate(PERSONS) if problem]


@pytest.mark.parametrize(("box", "vad", "problem"), PERSONS)
def test_box_problems_are_named(box, vad, problem) -> None:
    found = box_problem(box, WIDTH, HEIGHT)
    assert found is None if problem is None else problem in found


def _write_mat(root: Path, size: tuple[float, float]) -> None:
    persons = [
        {
            "body_bbox": np.array(box),
            "annotations_categories": {"categories": _cell(["Pain"])},
            "annotations_continuous": {"valence": vad[0], "arousal": vad[1], "dominance": vad[2]},
            "gender": "Male",
            "age": "Adult",
        }
        for box, vad, _ in PERSONS
    ]
    image = {
        "filename": "a.jpg",
        "folder": "mscoco/images",
        "image_size": {"n_col": size[0], "n_row": size[1]},
        "original_database": {"name": "mscoco"},
        "person": _struct_array(persons),
    }
    (root / "Annotations").mkdir(parents=True)
    scipy.io.savemat(str(root / "Annotations" / "Annotations.mat"), {"train": _struct_array([image])})


def _write_csv(root: Path, size: tuple[float, float]) -> None:
    (root / "emotic_pre").mkdir(parents=True)
    with open(root / "emotic_pre" / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for k, (box, vad, _) in enumerate(PERSONS):
            writer.writerow([k, "mscoco/images", "a.jpg", list(size), list(box), ["Pain"], list(vad), "Male", "Adult"])


WRITERS = {"mat": _write_mat, "csv": _write_csv}


@pytest.mark.parametrize("fmt", WRITERS)
def test_both_layouts_skip_count_and_name_the_same_bad_persons(tmp_path: Path, fmt: str) -> None:
    WRITERS[fmt](tmp_path, (WIDTH, HEIGHT))
    with pytest.warns(EmoticWarning, match=rf"skipped 1 person.*, {len(BAD)} with an unusable box \(first: "):
        data = load_split(tmp_path, "train", fmt)
    assert [r.bbox for r in data.records] == [GOOD, (0.0, 0.0, float(WIDTH), float(HEIGHT))]
    assert (data.skipped, data.clipped, len(data.bad_boxes)) == (1, 1, len(BAD))
    person = "train[0].person[{}] (a.jpg)" if fmt == "mat" else "line {} (a.jpg)"
    for line, (k, problem) in zip(data.bad_boxes, BAD):
        assert person.format(k if fmt == "mat" else k + 2) in line and problem in line, line
        box = [round(v, 1) for v in PERSONS[k][0]]
        assert f"box {box}" in line


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize("size", [(NAN, HEIGHT), (WIDTH, INF), (0, HEIGHT)])
def test_an_unusable_image_size_is_one_line_in_both_layouts(tmp_path: Path, fmt: str, size) -> None:
    WRITERS[fmt](tmp_path, size)
    with pytest.raises(EmoedgeError, match=r"a\.jpg\): image size .*expected \[width, height\], each >= 1") as exc:
        load_split(tmp_path, "train", fmt)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("box", "vad"), [((9.0, 1.0, 2.0, 9.0), (5.0, 5.0, 5.0)), (GOOD, (5.0, NAN, 5.0))])
def test_a_record_cannot_hold_a_bad_box_or_vad(box, vad) -> None:
    with pytest.raises(ValueError, match="x.jpg"):
        PersonRecord("f", "x.jpg", (WIDTH, HEIGHT), box, ("Pain",), vad)


def _with_train_boxes(src: Path, dst: Path, boxes: dict[int, str]) -> Path:
    """A copy of the sample whose train CSV rows `boxes` (0-based) get those BBox cells."""
    shutil.copytree(src, dst)
    path = dst / "emotic_pre" / "train.csv"
    rows = list(csv.DictReader(path.read_text().splitlines()))
    for k, box in boxes.items():
        rows[k]["BBox"] = box
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dst


@pytest.mark.parametrize("box", ["[nan, 9, 67, 107]", "[67, 9, 11, 107]", "[500, 400, 600, 500]"])
def test_a_bad_box_is_skipped_when_read_and_fatal_in_data_check(sample_root, tmp_path, box) -> None:
    root = _with_train_boxes(sample_root, tmp_path / "d", {0: box})
    clean = load_split(sample_root, "train", "csv")
    with pytest.warns(EmoticWarning, match=r"1 with an unusable box \(first: .*train.csv line 2 \(\S+\.jpg\): box"):
        data = load_split(root, "train", "csv")
    assert len(data.records) == len(clean.records) - 1 and len(data.bad_boxes) == 1
    report = check_dataset(root, "csv")
    assert any("train: 1 person(s) with an unusable box" in p and "line 2" in p for p in report.fatal)


def test_data_check_lists_every_bad_box_to_fix(sample_root, tmp_path) -> None:
    root = _with_train_boxes(sample_root, tmp_path / "d", {0: "[nan, 9, 67, 107]", 5: "[67, 9, 11, 107]"})
    report = check_dataset(root, "csv")
    assert report.splits["train"].bad_boxes == load_split(root, "train", "csv").bad_boxes
    text = format_report(report).splitlines()
    listed = text[text.index("to fix (every one):") + 1 :]
    assert [line.split(": box ")[1] for line in listed] == ["[nan, 9.0, 67.0, 107.0] is not finite", _SWAPPED]
    assert all("unusable box" in line and "train.csv line" in line for line in listed)
    row = next(line.split() for line in text if line.startswith("train "))
    assert row[4] == "2"  # the "bad boxes" column


_SWAPPED = "[67.0, 9.0, 11.0, 107.0] has x2 <= x1 (expected [x1, y1, x2, y2] with x2 > x1 and y2 > y1)"


def _text_as_jpg(sample_root: Path, root: Path) -> Path:
    shutil.copytree(sample_root, root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoticWarning)
        victim = image_path(root, load_split(root, "val").records[0])
    victim.write_text("just text")
    return victim


def test_a_text_file_named_jpg_is_not_an_image(sample_root, tmp_path) -> None:
    victim = _text_as_jpg(sample_root, tmp_path / "d")
    report = check_dataset(tmp_path / "d")
    assert [p for p in report.fatal if "not decodable images" in p and victim.name in p]
    assert report.splits["val"].undecodable_images == (str(victim),)
    assert f"  val: not an image: {victim}" in format_report(report).splitlines()
    assert not check_dataset(sample_root).fatal


def test_loaders_refuse_a_text_file_named_jpg_before_any_work(sample_root, tmp_path) -> None:
    victim = _text_as_jpg(sample_root, tmp_path / "d")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoticWarning)
        assert checked_records(tmp_path / "d", "train")  # the other splits are fine
        with pytest.raises(EmoedgeError, match="val split not decodable images") as exc:
            checked_records(tmp_path / "d", "val")
    assert str(victim) in str(exc.value) and "\n" not in str(exc.value)


def test_kept_boxes_are_finite_and_inside(sample_root) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoticWarning)
        records = load_split(sample_root, "train").records
    for rec in records:
        x1, y1, x2, y2 = rec.bbox
        assert all(math.isfinite(v) for v in rec.bbox + rec.vad)
        assert 0 <= x1 < x2 <= rec.image_size[0] and 0 <= y1 < y2 <= rec.image_size[1]
