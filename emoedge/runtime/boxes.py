"""Persons given in a boxes file (JSON or CSV) instead of found by a detector: the file's reader and its finder.

Formats (pixel coordinates of the source frames, frame index 0-based in decoding order; for an image folder the index
is the image's place in name order, or entries name the image file instead):
    JSON  {"frames": [{"index": 0, "boxes": [[x1, y1, x2, y2], ...], "ids": [7, ...]}, ...]}   ("ids" optional)
          {"frames": [{"file": "img_0001.jpg", "boxes": [...]}, ...]}                          (image folders)
    CSV   header `frame,x1,y1,x2,y2[,id]`, or `file,x1,y1,x2,y2[,id]`, one row per person and frame
Either every frame gives ids or none does; without ids the boxes are tracked by ByteTrack (`emoedge.runtime.tracking`),
so ids mean the same thing as a detector's. Frames with no entry have no persons; entries no frame asked for (an
unreadable image's, a misspelt name's) are named in a warning at the end of the stream.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from emoedge.errors import EmoedgeError
from emoedge.runtime.finders import Found
from emoedge.runtime.persons import Persons
from emoedge.runtime.sources import Frame

CSV_FIELDS = ("frame", "x1", "y1", "x2", "y2")


class BoxesFile:
    """A person finder (`emoedge.runtime.finders.PersonFinder`) reading one stream's boxes by frame index or image
    file name; `gives_ids` when the file has track ids (then no tracker runs, and the ids are kept as given)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.frames, self.gives_ids = load_boxes(self.path)
        self._by_name = any(isinstance(key, str) for key in self.frames)
        self._asked: set[int | str] = set()
        self.name = f"boxes file {self.path.name}"

    def find(self, frames: list[Frame]) -> list[Found]:
        return [self._one(frame) for frame in frames]

    def _one(self, frame: Frame) -> Found:
        key = frame.name if self._by_name else frame.index
        if key is None:
            raise EmoedgeError(
                f"boxes file {self.path} names image files, but the source is not an image folder; give frame "
                "indices ('index' in JSON, a 'frame' column in CSV)"
            )
        self._asked.add(key)
        persons = self.frames.get(key, Persons.empty())
        return Found(persons.boxes, persons.confidences, persons.ids if self.gives_ids else None)

    def unused(self) -> list[str]:
        left = sorted(key for key in self.frames if key not in self._asked)  # all of one type: indices or names
        return [f"file {key!r}" if self._by_name else f"frame {key}" for key in left]


def load_boxes(path: Path) -> tuple[dict[int | str, Persons], bool]:
    """({frame index or image file name: Persons}, whether the file gives track ids); every problem is one line
    naming the field. A file keys all its entries one way: by index, or (image folders) by file name."""
    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"boxes file {path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise EmoedgeError(f"boxes file {path}: expected a .json or .csv file, not {suffix or 'a suffix-less file'}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # -sig: a spreadsheet's CSV may start with a byte-order mark
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise EmoedgeError(
            f"boxes file {path}: line {line}: not UTF-8 text (byte {exc.start}, 0x{data[exc.start]:02x}, cannot be "
            "decoded); save the file as UTF-8"
        ) from None
    rows = _json_rows(path, text) if suffix == ".json" else _csv_rows(path, text)
    frames: dict[int | str, tuple[list[list[float]], list[int]]] = {}
    with_ids = {where for where, _, _, ident in rows if ident is not None}
    if with_ids and len(with_ids) != len({where for where, *_ in rows}):
        missing = next(where for where, _, _, ident in rows if ident is None)
        raise EmoedgeError(f"boxes file {path}: {missing}: no track id, but other entries have one (all or none)")
    for where, index, box, ident in rows:
        boxes, ids = frames.setdefault(index, ([], []))
        if ident is not None and ident in ids:
            raise EmoedgeError(f"boxes file {path}: {where}: track id {ident} appears twice in frame {index!r}")
        boxes.append(box)
        ids.append(len(ids) if ident is None else ident)
    persons = {index: Persons.from_arrays(boxes, ids) for index, (boxes, ids) in frames.items()}
    return persons, bool(with_ids)


Row = tuple[str, "int | str", list[float], "int | None"]  # where (for messages), frame index or file name, box, id


def _json_rows(path: Path, text: str) -> list[Row]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EmoedgeError(f"boxes file {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise EmoedgeError(f"boxes file {path}: expected an object with a 'frames' list")
    rows: list[Row] = []
    seen: set[int | str] = set()
    for i, entry in enumerate(data["frames"]):
        where = f"frames[{i}]"
        if not isinstance(entry, dict):
            raise EmoedgeError(f"boxes file {path}: {where}: expected an object with 'index' (or 'file') and 'boxes'")
        unknown = sorted(set(entry) - {"index", "file", "boxes", "ids"})
        if unknown:
            raise EmoedgeError(
                f"boxes file {path}: {where}: unknown field(s) {unknown}; expected index (or file), boxes, ids"
            )
        if ("index" in entry) == ("file" in entry):
            raise EmoedgeError(f"boxes file {path}: {where}: expected one of 'index' (frame) or 'file' (image name)")
        if "boxes" not in entry:
            raise EmoedgeError(f"boxes file {path}: {where}: missing field 'boxes'")
        if "file" in entry:
            index = _file_name(path, f"{where}.file", entry["file"])
        else:
            index = _frame_index(path, f"{where}.index", entry["index"])
        if index in seen:
            raise EmoedgeError(f"boxes file {path}: {where}: frame {index!r} is listed twice")
        if seen and isinstance(index, str) != isinstance(next(iter(seen)), str):
            raise EmoedgeError(f"boxes file {path}: {where}: entries by frame index and by file name mixed; use one")
        seen.add(index)
        boxes, ids = entry["boxes"], entry.get("ids")
        if not isinstance(boxes, list):
            raise EmoedgeError(f"boxes file {path}: {where}.boxes: expected a list of [x1, y1, x2, y2]")
        if ids is not None and (not isinstance(ids, list) or len(ids) != len(boxes)):
            raise EmoedgeError(f"boxes file {path}: {where}.ids: expected a list of {len(boxes)} integers, one per box")
        for j, box in enumerate(boxes):
            ident = None if ids is None else _track_id(path, f"{where}.ids[{j}]", ids[j])
            rows.append((f"{where}.boxes[{j}]", index, _box(path, f"{where}.boxes[{j}]", box), ident))
    return rows


def _csv_rows(path: Path, text: str) -> list[Row]:
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    key = columns[0] if columns and columns[0] in ("frame", "file") else "frame"
    if (
        columns[1 : len(CSV_FIELDS)] != list(CSV_FIELDS[1:])
        or columns[:1] != [key]
        or columns[len(CSV_FIELDS) :] not in ([], ["id"])
    ):
        raise EmoedgeError(
            f"boxes file {path}: header {','.join(columns) or '(empty)'}; "
            "expected frame,x1,y1,x2,y2 (or file,x1,y1,x2,y2 for an image folder), optionally ,id"
        )
    reader.fieldnames = columns
    rows: list[Row] = []
    for line, record in enumerate(reader, start=2):
        where = f"line {line}"
        if None in record or any(record.get(c) is None for c in columns):
            raise EmoedgeError(f"boxes file {path}: {where}: expected {len(columns)} columns ({','.join(columns)})")
        if key == "file":
            index: int | str = _file_name(path, f"{where} column 'file'", record["file"])
        else:
            index = _frame_index(
                path, f"{where} column 'frame'", _parse(path, f"{where} column 'frame'", record["frame"])
            )
        box = [_parse(path, f"{where} column '{c}'", record[c]) for c in CSV_FIELDS[1:]]
        ident = None
        if "id" in columns:
            ident = _track_id(path, f"{where} column 'id'", _parse(path, f"{where} column 'id'", record["id"]))
        rows.append((where, index, _box(path, where, box), ident))
    return rows


def _parse(path: Path, where: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise EmoedgeError(f"boxes file {path}: {where}: {text.strip()!r} is not a number") from None


def _frame_index(path: Path, where: str, value: Any) -> int:
    return _whole(path, where, value, "a frame index")


def _track_id(path: Path, where: str, value: Any) -> int:
    return _whole(path, where, value, "a track id")


def _file_name(path: Path, where: str, value: Any) -> str:
    """An image's file name (its folder's name order gives the frames), not a path."""
    if not isinstance(value, str) or not value.strip() or "/" in value or "\\" in value:
        raise EmoedgeError(f"boxes file {path}: {where}: {value!r} is not an image file name (such as img_0001.jpg)")
    return value.strip()


def _whole(path: Path, where: str, value: Any, what: str) -> int:
    """A whole number >= 0; NaN, infinities, fractions, booleans and negatives are one line naming the field."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value != int(value) or value < 0:
        raise EmoedgeError(f"boxes file {path}: {where}: {value!r} is not {what} (an integer >= 0)")
    return int(value)


def _box(path: Path, where: str, box: Any) -> list[float]:
    ok = (
        isinstance(box, list) and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    )  # fmt: skip
    if not ok or box[2] <= box[0] or box[3] <= box[1]:
        raise EmoedgeError(
            f"boxes file {path}: {where}: {box!r} is not a box; expected [x1, y1, x2, y2] pixels with x2 > x1, y2 > y1"
        )
    return [float(v) for v in box]
