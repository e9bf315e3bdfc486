"""Readers for EMOTIC annotations: the official `Annotations.mat` and the preprocessed CSVs.

Both return `SplitData` whose records compare equal for the same person, with the release's known defects
handled the same way: boxes partly outside the image are clipped (counted); persons with no category or a NaN (or
infinite) valence/arousal/dominance, and persons whose box is unusable (not finite, x2 <= x1 or y2 <= y1, wholly outside the
image: never swapped or shrunk to a made-up pixel) are skipped (counted, the boxes listed for `data check`); one
`EmoticWarning` line reports the counts.
Every problem a user can fix raises `EmoedgeError` with one line naming the file.
"""

from __future__ import annotations

import ast
import csv
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.categories import VAD_NAMES
from emoedge.data.records import PersonRecord, SplitData, box_problem, canonical_categories, clip_box, vad_usable
from emoedge.errors import EmoedgeError

SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMATS: tuple[str, ...] = ("auto", "mat", "csv")
CSV_COLUMNS: tuple[str, ...] = (
    "Index",
    "Folder",
    "Filename",
    "Image Size",
    "BBox",
    "Categorical_Labels",
    "Continuous_Labels",
    "Gender",
    "Age",
)
# `Index` is only a row number; the reader needs the others.
_CSV_REQUIRED: tuple[str, ...] = CSV_COLUMNS[1:]


class EmoticWarning(UserWarning):
    """Persons skipped or boxes clipped while reading annotations (expected on the real release)."""


# --------------------------------------------------------------------------------------------- paths


def find_annotations(root: Path) -> Path:
    """`root/Annotations/Annotations.mat`, or EmoedgeError naming where it was looked for."""
    path = Path(root) / "Annotations" / "Annotations.mat"
    if not path.is_file():
        raise EmoedgeError(f"EMOTIC annotations not found: {path} does not exist")
    return path


def csv_path(root: Path, split: str) -> Path:
    """Where the preprocessed layout keeps a split: `root/emotic_pre/<split>.csv`."""
    return Path(root) / "emotic_pre" / f"{split}.csv"


def image_path(root: Path, rec: PersonRecord) -> Path:
    """The image file of a record: `root/emotic/<folder>/<filename>`."""
    return Path(root) / "emotic" / rec.folder / rec.filename


def resolve_source(root: Path, split: str, fmt: str = "auto") -> tuple[str, Path]:
    """Which annotation file `load_split` reads for `split`: ("mat" | "csv", path)."""
    _check_split(split)
    root = Path(root)
    if fmt not in FORMATS:
        raise EmoedgeError(f"annotation format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "mat":
        return "mat", find_annotations(root)
    if fmt == "csv":
        return "csv", csv_path(root, split)
    mat = root / "Annotations" / "Annotations.mat"
    if mat.is_file():
        return "mat", mat
    if csv_path(root, split).is_file():
        return "csv", csv_path(root, split)
    raise EmoedgeError(
        f"no EMOTIC annotations under {root}: looked for {mat} (official) and {csv_path(root, split)} (preprocessed)"
    )


def load_split(root: Path, split: str, fmt: str = "auto") -> SplitData:
    """Read one split from the official .mat ("mat"), the preprocessed CSV ("csv") or whichever exists ("auto")."""
    kind, path = resolve_source(root, split, fmt)
    return read_mat(path, split) if kind == "mat" else read_csv(path, split)


# ----------------------------------------------------------------------------------------- .mat files


def read_mat(mat_path: Path, split: str) -> SplitData:
    """Read `split` ("train", "val" or "test") from the official `Annotations.mat`."""
    import scipy.io  # optional dependency (the `train` extra)

    _check_split(split)
    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise EmoedgeError(f"EMOTIC annotations not found: {mat_path} does not exist")
    try:
        names = [entry[0] for entry in scipy.io.whosmat(str(mat_path))]
        if split not in names:
            raise EmoedgeError(
                f"{mat_path}: no variable {split!r} in this .mat file; it has: {', '.join(names) or 'no variables'}"
            )
        data = scipy.io.loadmat(str(mat_path), struct_as_record=False, squeeze_me=True, variable_names=[split])[split]
    except EmoedgeError:
        raise
    except NotImplementedError:
        raise EmoedgeError(
            f"{mat_path}: MATLAB v7.3 (HDF5) files are not supported; save it with `save(..., '-v7')`"
        ) from None
    except Exception as exc:  # scipy raises many types (ValueError, TypeError, MatReadError, OSError, ...)
        raise EmoedgeError(f"{mat_path}: not a readable MATLAB .mat file ({_first_line(exc)})") from None

    builder = _SplitBuilder(split, mat_path)
    for i, image in enumerate(_items(data)):
        where = f"{mat_path} {split}[{i}]"
        try:
            folder = _text(_get(image, "folder"))
            filename = _text(_get(image, "filename"))
            size = _get(image, "image_size")
            image_size = (_number(_get(size, "n_col")), _number(_get(size, "n_row")))
        except (AttributeError, TypeError, ValueError) as exc:
            raise EmoedgeError(f"{where}: malformed image entry ({_first_line(exc)})") from None
        persons = _items(_get(image, "person", default=None))
        builder.note_image(folder, filename)
        for j, person in enumerate(persons):
            try:
                box = tuple(float(v) for v in np.asarray(_get(person, "body_bbox"), dtype=float).ravel())
                categories = _mat_categories(person)
                vad = _mat_vad(person)
                gender = _text(_get(person, "gender", default=""))
                age = _text(_get(person, "age", default=""))
            except (AttributeError, TypeError, ValueError) as exc:
                raise EmoedgeError(f"{where}.person[{j}] ({filename}): malformed person ({_first_line(exc)})") from None
            builder.add(
                f"{where}.person[{j}] ({filename})",
                folder,
                filename,
                image_size,
                box,
                categories,
                vad,
                gender,
                age,
            )
    return builder.finish()


def _mat_categories(person: Any) -> list[str]:
    """Labels of a person: `combined_categories` where present (val/test), else the annotators' union."""
    if hasattr(person, "combined_categories"):
        return _strings(person.combined_categories)
    names: list[str] = []
    for annotation in _items(_get(person, "annotations_categories", default=None)):
        names.extend(_strings(_get(annotation, "categories", default=None)))
    return names


def _mat_vad(person: Any) -> tuple[float, float, float]:
    """VAD of a person: `combined_continuous` where present (val/test), else the annotators' mean; NaN if absent."""
    if hasattr(person, "combined_continuous"):
        sources = _items(person.combined_continuous)
    else:
        sources = _items(_get(person, "annotations_continuous", default=None))
    if not sources:
        return (math.nan, math.nan, math.nan)
    values = [[_number(_get(s, name, default=None)) for name in VAD_NAMES] for s in sources]
    mean = np.mean(np.asarray(values, dtype=float), axis=0)  # a NaN anywhere stays NaN: skipped
    return (float(mean[0]), float(mean[1]), float(mean[2]))


_MISSING = object()


def _get(obj: Any, name: str, default: Any = _MISSING) -> Any:
    if hasattr(obj, name):
        return getattr(obj, name)
    if default is _MISSING:
        raise AttributeError(f"missing field {name!r}")
    return default


def _items(value: Any) -> list[Any]:
    """A MATLAB struct or struct array (squeezed by scipy) as a list; empty arrays and None as []."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _strings(value: Any) -> list[str]:
    """A MATLAB char array or cell array of them as a list of non-empty strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return [str(v).strip() for v in value.ravel() if str(v).strip()]
        out: list[str] = []
        for item in value.ravel():
            out.extend(_strings(item))
        return out
    raise TypeError(f"expected text, got {type(value).__name__}")


def _text(value: Any) -> str:
    strings = _strings(value)
    return strings[0] if strings else ""


def _number(value: Any) -> float:
    """A MATLAB numeric scalar as float; empty → NaN."""
    if value is None:
        return math.nan
    array = np.asarray(value, dtype=float).ravel()
    if array.size == 0:
        return math.nan
    if array.size != 1:
        raise ValueError(f"expected one number, got {array.size}")
    return float(array[0])


# ------------------------------------------------------------------------------------------ CSV files


def read_csv(csv_path: Path, split: str) -> SplitData:
    """Read a preprocessed split CSV (columns `Index, Folder, Filename, Image Size, BBox, Categorical_Labels,
    Continuous_Labels, Gender, Age`; lists written as Python literals)."""
    _check_split(split)
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise EmoedgeError(f"EMOTIC CSV not found: {csv_path} does not exist")
    builder = _SplitBuilder(split, csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise EmoedgeError(f"{csv_path}: empty file, expected a header with columns {', '.join(CSV_COLUMNS)}")
            missing = [c for c in _CSV_REQUIRED if c not in header]
            if missing:
                raise EmoedgeError(
                    f"{csv_path}: missing column {missing[0]!r} (has: {', '.join(header)}; "
                    f"expected: {', '.join(CSV_COLUMNS)})"
                )
            reader.fieldnames = header
            for row in reader:
                filename = (row["Filename"] or "").strip()
                where = f"{csv_path} line {reader.line_num} ({filename})"
                builder.add(
                    where,
                    (row["Folder"] or "").strip(),
                    filename,
                    tuple(_numbers(row, "Image Size", 2, where)),
                    tuple(_numbers(row, "BBox", 4, where)),
                    _category_list(row, where),
                    tuple(_numbers(row, "Continuous_Labels", 3, where)),
                    (row["Gender"] or "").strip(),
                    (row["Age"] or "").strip(),
                )
    except UnicodeDecodeError as exc:
        raise EmoedgeError(f"{csv_path}: not a UTF-8 text file ({_first_line(exc)})") from None
    except csv.Error as exc:
        raise EmoedgeError(f"{csv_path}: malformed CSV ({_first_line(exc)})") from None
    return builder.finish()


def _numbers(row: dict[str, str], column: str, count: int, where: str) -> list[float]:
    """A list of `count` numbers written as a Python literal (`[1, 2.5]`); `nan` and numpy's `[1. 2.]` too."""
    text = (row[column] or "").strip()
    try:
        value = ast.literal_eval(text)
        numbers = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        # `nan` is no literal and numpy writes `[1. 2. 3.]`: split on commas/spaces and parse each number.
        parts = text.strip("[]() ").replace(",", " ").split()
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise EmoedgeError(f"{where}: column {column!r}: cannot parse {text[:60]!r} as a list of numbers") from None
    if len(numbers) != count:
        raise EmoedgeError(f"{where}: column {column!r}: expected {count} numbers, got {text[:60]!r}")
    return numbers


def _category_list(row: dict[str, str], where: str) -> list[str]:
    text = (row["Categorical_Labels"] or "").strip()
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise EmoedgeError(
            f"{where}: column 'Categorical_Labels': cannot parse {text[:60]!r} as a list of names"
        ) from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise EmoedgeError(f"{where}: column 'Categorical_Labels': expected a list of names, got {text[:60]!r}")
    return [v for v in value if v.strip()]


# ------------------------------------------------------------------------------------------ shared


class _SplitBuilder:
    """Turns raw per-person fields into records, applying the defect rules identically for both readers."""

    def __init__(self, split: str, source: Path) -> None:
        self.split, self.source = split, source
        self.records: list[PersonRecord] = []
        self.skipped = self.clipped = 0
        self.bad_boxes: list[str] = []
        self._images: set[tuple[str, str]] = set()
        self._labelled: set[tuple[str, str]] = set()

    def note_image(self, folder: str, filename: str) -> None:
        """Count an image even when it has no person entry at all."""
        self._images.add((folder, filename))

    def add(
        self,
        where: str,
        folder: str,
        filename: str,
        image_size: tuple[float, ...],
        box: tuple[float, ...],
        categories: Iterable[str],
        vad: tuple[float, ...],
        gender: str,
        age: str,
    ) -> None:
        """One person: a malformed entry is an error; an unlabelled one or one with an unusable box is counted."""
        if not filename:
            raise EmoedgeError(f"{where}: empty file name")
        self.note_image(folder, filename)
        if len(box) != 4:
            raise EmoedgeError(f"{where}: body_bbox {list(box)}: expected 4 numbers [x1, y1, x2, y2]")
        if len(image_size) != 2 or not all(math.isfinite(v) and v >= 1 for v in image_size):
            raise EmoedgeError(f"{where}: image size {list(image_size)}: expected [width, height], each >= 1")
        width, height = int(image_size[0]), int(image_size[1])
        try:
            names = canonical_categories(categories)
        except ValueError as exc:
            raise EmoedgeError(f"{where}: {exc}") from None
        if not names or not vad_usable(vad):
            self.skipped += 1
            return
        problem = box_problem(box, width, height)
        if problem is not None:
            self.bad_boxes.append(f"{where}: box {[round(v, 1) for v in box]} {problem}")
            return
        clipped_box, changed = clip_box(box, width, height)  # type: ignore[arg-type]
        self.clipped += int(changed)
        self.records.append(
            PersonRecord(
                folder=folder,
                filename=filename,
                image_size=(width, height),
                bbox=clipped_box,
                categories=names,
                vad=(float(vad[0]), float(vad[1]), float(vad[2])),
                gender=gender,
                age=age,
            )
        )
        self._labelled.add((folder, filename))

    def finish(self) -> SplitData:
        unlabelled = len(self._images - self._labelled)
        if self.skipped or self.clipped or self.bad_boxes:
            bad = f", {len(self.bad_boxes)} with an unusable box (first: {self.bad_boxes[0]})" if self.bad_boxes else ""
            warnings.warn(
                f"{self.source} [{self.split}]: skipped {self.skipped} person(s) without category or with a "
                f"non-finite VAD{bad}, clipped {self.clipped} box(es) to the image; {len(self.records)} persons kept, "
                f"{unlabelled} image(s) without a labelled person",
                EmoticWarning,
                stacklevel=3,
            )
        return SplitData(
            split=self.split,
            records=self.records,
            skipped=self.skipped,
            clipped=self.clipped,
            bad_boxes=tuple(self.bad_boxes),
        )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise EmoedgeError(f"split {split!r}: expected one of {', '.join(SPLITS)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
