"""The .mat and CSV readers: agreement, defect handling, and one-line errors naming the file."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from emoedge.categories import CATEGORIES
from emoedge.data.emotic import (
    CSV_COLUMNS,
    EmoticWarning,
    find_annotations,
    image_path,
    load_split,
    read_csv,
    read_mat,
)
from emoedge.data.records import PersonRecord
from emoedge.data.sample import _cell, _struct_array
from emoedge.errors import EmoedgeError

SPLITS = ("train", "val", "test")
# Defects the sample writes on purpose (see emoedge/data/sample.py).
SAMPLE_SKIPPED = {"train": 3, "val": 1, "test": 1}
SAMPLE_CLIPPED = {"train": 1, "val": 1, "test": 1}


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoticWarning)
        return fn(*args)


def _one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


@pytest.mark.parametrize("split", SPLITS)
def test_mat_and_csv_readers_give_identical_records(sample_root: Path, split: str) -> None:
    from_mat = _quiet(load_split, sample_root, split, "mat")
    from_csv = _quiet(load_split, sample_root, split, "csv")
    assert len(from_mat.records) > 20
    assert from_mat.records == from_csv.records
    # Record fields have the contract's types, not numpy ones.
    rec = from_mat.records[0]
    assert all(type(v) is float for v in rec.bbox + rec.vad)
    assert all(type(v) is int for v in rec.image_size)


@pytest.mark.parametrize("split", SPLITS)
def test_sample_defects_are_clipped_and_skipped_with_one_warning(sample_root: Path, split: str) -> None:
    with pytest.warns(EmoticWarning) as caught:
        data = read_mat(sample_root / "Annotations" / "Annotations.mat", split)
    ours = [w for w in caught if issubclass(w.category, EmoticWarning)]
    assert len(ours) == 1
    text = str(ours[0].message)
    assert f"skipped {SAMPLE_SKIPPED[split]} person" in text and f"clipped {SAMPLE_CLIPPED[split]} box" in text
    assert "\n" not in text
    assert (data.skipped, data.clipped) == (SAMPLE_SKIPPED[split], SAMPLE_CLIPPED[split])
    for rec in data.records:
        x1, y1, x2, y2 = rec.bbox
        assert 0 <= x1 <= x2 <= rec.image_size[0] and 0 <= y1 <= y2 <= rec.image_size[1]
        assert rec.categories and not any(np.isnan(rec.vad))
    # The last person of the sample's first image runs past the right and bottom edges: clipped there.
    last = [r for r in data.records if r.filename.endswith("_0000.jpg")][-1]
    assert last.bbox[2:] == (float(last.image_size[0]), float(last.image_size[1]))


def test_sample_image_without_labels_yields_no_record(sample_root: Path) -> None:
    with pytest.warns(EmoticWarning, match="1 image"):
        data = read_mat(sample_root / "Annotations" / "Annotations.mat", "train")
    assert not any(r.filename == "emoedge_train_0003.jpg" for r in data.records)


def _write_csv(path: Path, rows: list[list], columns=CSV_COLUMNS) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def test_csv_reader_clips_skips_and_sorts(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "train.csv",
        [
            [0, "a/images", "x.jpg", [100, 80], [-5, 10, 120, 70], ["Pain", "Anger"], [5, 6, 7], "Male", "Adult"],
            [1, "a/images", "x.jpg", "[100, 80]", "[1, 2, 3, 4]", "[]", "[5, 6, 7]", "Male", "Adult"],
            [2, "a/images", "y.jpg", "[100, 80]", "[1, 2, 3, 4]", "['Fear']", "[nan, 6, 7]", "Female", "Kid"],
            [3, "a/images", "y.jpg", "[100, 80]", "[1. 2. 3. 4.]", "['Fear']", "[5.5, 6.0, 7.0]", "Female", "Kid"],
        ],
    )
    with pytest.warns(EmoticWarning, match="skipped 2 person"):
        data = read_csv(path, "train")
    assert (data.skipped, data.clipped) == (2, 1)
    assert data.records[0] == PersonRecord(
        "a/images", "x.jpg", (100, 80), (0.0, 10.0, 100.0, 70.0), ("Anger", "Pain"), (5.0, 6.0, 7.0), "Male", "Adult"
    )
    assert data.records[1].bbox == (1.0, 2.0, 3.0, 4.0) and data.records[1].vad == (5.5, 6.0, 7.0)
    np.testing.assert_array_equal(data.records[0].multi_hot().nonzero()[0], [1, 17])
    assert data.records[0].multi_hot().dtype == np.float32


def test_missing_annotations_mat(tmp_path: Path) -> None:
    expected = tmp_path / "Annotations" / "Annotations.mat"
    with pytest.raises(EmoedgeError) as exc:
        find_annotations(tmp_path)
    _one_line_naming(exc, expected)
    with pytest.raises(EmoedgeError) as exc:
        load_split(tmp_path, "train", "mat")
    _one_line_naming(exc, expected)


def test_auto_format_falls_back_to_csv_then_says_what_it_looked_for(data_sample_copy: Path) -> None:
    (data_sample_copy / "Annotations" / "Annotations.mat").unlink()
    data = load_split(data_sample_copy, "val")  # the CSV: no warning, it holds only usable persons
    assert data.records and data.skipped == 0
    (data_sample_copy / "emotic_pre" / "val.csv").unlink()
    with pytest.raises(EmoedgeError) as exc:
        load_split(data_sample_copy, "val")
    assert "Annotations.mat" in str(exc.value) and "val.csv" in str(exc.value)


def test_mat_without_the_split_variable(tmp_path: Path) -> None:
    path = tmp_path / "Annotations.mat"
    scipy.io.savemat(str(path), {"val": np.zeros((1, 1)), "test": np.zeros((1, 1))})
    with pytest.raises(EmoedgeError) as exc:
        read_mat(path, "train")
    _one_line_naming(exc, path)
    assert "'train'" in str(exc.value) and "val" in str(exc.value) and "test" in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"MATLAB 5.0 MAT-file garbage" + bytes(range(256)) * 4, b"\x00" * 200])
def test_corrupt_mat(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "Annotations.mat"
    path.write_bytes(content)
    with pytest.raises(EmoedgeError) as exc:
        read_mat(path, "train")
    _one_line_naming(exc, path)


def test_csv_missing_a_column(tmp_path: Path) -> None:
    columns = [c for c in CSV_COLUMNS if c != "BBox"]
    path = _write_csv(
        tmp_path / "test.csv", [[0, "a", "x.jpg", "[1, 1]", "['Fear']", "[5, 5, 5]", "Male", "Adult"]], columns
    )
    with pytest.raises(EmoedgeError) as exc:
        read_csv(path, "test")
    _one_line_naming(exc, path)
    assert "'BBox'" in str(exc.value)


@pytest.mark.parametrize(
    "column, value",
    [("BBox", "[1, 2, 3]"), ("Categorical_Labels", "__import__('os')"), ("Image Size", "[0, 10]")],
)
def test_csv_bad_values_name_line_and_column(tmp_path: Path, column: str, value: str) -> None:
    row = dict(zip(CSV_COLUMNS, [0, "a", "x.jpg", "[10, 10]", "[1, 1, 5, 5]", "['Fear']", "[5, 5, 5]", "M", "A"]))
    row[column] = value
    path = _write_csv(tmp_path / "train.csv", [list(row.values())])
    with pytest.raises(EmoedgeError) as exc:
        read_csv(path, "train")
    _one_line_naming(exc, path)
    assert "line 2" in str(exc.value)


def _person(categories, **extra) -> dict:
    return {
        "body_bbox": np.array([1.0, 2.0, 30.0, 40.0]),
        "annotations_categories": {"categories": categories},
        "annotations_continuous": {"valence": 5, "arousal": 6, "dominance": 7},
        "gender": "Male",
        "age": "Adult",
        **extra,
    }


def _image(name: str, persons) -> dict:
    return {
        "filename": name,
        "folder": "mscoco/images",
        "image_size": {"n_col": 64, "n_row": 48},
        "original_database": {"name": "mscoco"},
        "person": persons,
    }


def test_read_mat_handles_the_shapes_squeezing_produces(tmp_path: Path) -> None:
    """A single image (squeezed to one struct), a single person, a lone category string, an empty person list."""
    path = tmp_path / "one.mat"
    scipy.io.savemat(str(path), {"train": _struct_array([_image("a.jpg", _struct_array([_person(_cell(["Pain"]))]))])})
    (rec,) = read_mat(path, "train").records
    assert rec.categories == ("Pain",) and rec.image_size == (64, 48) and rec.vad == (5.0, 6.0, 7.0)

    path = tmp_path / "two.mat"
    persons = _struct_array([_person(_cell(["Yearning", "Affection"])), _person(_cell([]))])
    empty = np.empty((0, 0), dtype=object)
    scipy.io.savemat(str(path), {"train": _struct_array([_image("a.jpg", persons), _image("b.jpg", empty)])})
    with pytest.warns(EmoticWarning, match="1 image"):
        data = read_mat(path, "train")
    assert [r.categories for r in data.records] == [("Affection", "Yearning")] and data.skipped == 1


def test_read_mat_unknown_category_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.mat"
    scipy.io.savemat(str(path), {"train": _struct_array([_image("a.jpg", _struct_array([_person(_cell(["Joy"]))]))])})
    with pytest.raises(EmoedgeError, match="Joy") as exc:
        read_mat(path, "train")
    _one_line_naming(exc, path)


def test_bad_split_and_format_names(sample_root: Path) -> None:
    with pytest.raises(EmoedgeError, match="split 'dev'"):
        load_split(sample_root, "dev")
    with pytest.raises(EmoedgeError, match="format 'json'"):
        load_split(sample_root, "train", "json")


def test_image_path_is_in_the_official_layout(sample_root: Path) -> None:
    rec = _quiet(load_split, sample_root, "test").records[0]
    path = image_path(sample_root, rec)
    assert path == sample_root / "emotic" / rec.folder / rec.filename and path.is_file()


def test_every_category_name_maps_to_its_index() -> None:
    rec = PersonRecord("f", "x.jpg", (10, 10), (0, 0, 5, 5), CATEGORIES, (5.0, 5.0, 5.0), "Male", "Adult")
    assert rec.multi_hot().sum() == 26
