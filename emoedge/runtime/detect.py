"""Who is in the frame: persons with persistent track ids, from an Ultralytics YOLO model or from a boxes file.

Why Ultralytics' own trackers: ByteTrack (Kalman prediction + two-stage IoU matching) is what `model.track` runs and
what its users know; re-implementing it would be a second, untested tracker. A boxes file without ids goes through
the same ByteTrack, so ids mean the same thing on both paths.

Ultralytics is imported on emoedge's terms (offline, no run-time installs: `emoedge.runtime.yolo`) and weights
are found or fetched by `emoedge.runtime.weights`. Ultralytics' predictor is set up once, when the detector is built,
because setting it up changes torch's thread count (see `YoloDetector`).

Boxes file formats (pixel coordinates of the source frames, frame index 0-based in decoding order; for an image
folder the index is the image's place in name order, or entries name the image file instead):
    JSON  {"frames": [{"index": 0, "boxes": [[x1, y1, x2, y2], ...], "ids": [7, ...]}, ...]}   ("ids" optional)
          {"frames": [{"file": "img_0001.jpg", "boxes": [...]}, ...]}                          (image folders)
    CSV   header `frame,x1,y1,x2,y2[,id]`, or `file,x1,y1,x2,y2[,id]`, one row per person and frame
Either every frame gives ids or none does; without ids the boxes are tracked by ByteTrack. Frames with no entry
have no persons; entries no frame asked for (an unreadable image's, a misspelt name's) are named in a warning at the
end of the run.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emoedge.errors import EmoedgeError
from emoedge.runtime.persons import Persons
from emoedge.runtime.settings import check_detect_every, check_detect_size
from emoedge.runtime.sources import Frame
from emoedge.runtime.weights import detector_weights
from emoedge.runtime.yolo import INSTALL_HINT, import_ultralytics

log = logging.getLogger(__name__)

TRACKER = "bytetrack.yaml"
PERSON = 0  # COCO class index
TRACK_CONF = 0.1  # the detection confidence floor Ultralytics' `model.track` sets for ByteTrack
CSV_FIELDS = ("frame", "x1", "y1", "x2", "y2")


class Detector(Protocol):
    """Persons of one frame, with track ids that persist across the frames of one run."""

    name: str

    def __call__(self, frame: Frame) -> Persons: ...

    def unused(self) -> list[str]:
        """Given persons that no frame has asked for so far (a boxes file's entries), described for a warning."""
        ...


def open_detector(
    detector: Path | str | None,
    boxes: Path | None,
    *,
    device: str = "auto",
    download: bool = True,
    detect_every: int = 1,
    detect_size: int | None = None,
) -> Detector:
    """A boxes-file detector if `boxes` is given, else a YOLO detector (default weights: yolo11n.pt, fetched by
    Ultralytics' downloader when missing and `download` allows it) run every `detect_every`-th frame at
    `detect_size` pixels (None: the model's own)."""
    if detector is not None and boxes is not None:
        raise EmoedgeError("give either a detector (--detector WEIGHTS) or a boxes file (--boxes FILE), not both")
    if boxes is not None:
        return BoxesDetector(boxes, detect_every=detect_every)
    return YoloDetector(detector, device=device, download=download, detect_every=detect_every, size=detect_size)


# ------------------------------------------------------------------------------------------------ YOLO


class YoloDetector:
    """Persons by an Ultralytics YOLO model, tracked by ByteTrack (`BoxTracker`); one instance per video (it holds
    the tracks). With `detect_every` K the model runs on every K-th frame and the tracker's Kalman filter carries
    the tracks through the frames between (DeepStream's `interval`); `detect` serves several streams in one call.

    Ultralytics sets up its predictor on the first predict or track call, and that setup (`select_device` in
    utils/torch_utils.py) sets torch to (cores - 1) threads for CPU inference: 1 on a 2-core machine, halving the
    emotion model's speed. That setting is for Ultralytics' own training loop; the runtime keeps the process's. So
    the predictor is set up here, once (for an exported model reading its class names sets one up too), and the
    thread count restored; Ultralytics rebuilds it only when a setup argument (device, ...) changes, and every
    call passes the same ones.
    """

    def __init__(
        self,
        weights: Path | str | None = None,
        *,
        device: str = "auto",
        download: bool = True,
        detect_every: int = 1,
        size: int | None = None,
    ) -> None:
        """`weights`: a path, an official Ultralytics name or a URL (see `detector_weights`); None: yolo11n.pt;
        `size`: inference size in pixels (None: the model's own, 640 for Ultralytics' detectors)."""
        check_detect_every(detect_every)
        check_detect_size(size)
        weights = detector_weights(weights, download=download)
        suffix = weights.suffix.lower()
        ultralytics = import_ultralytics()
        if suffix == ".engine":
            # TensorRT keeps one logger per process, the first one given: make it emoedge's before Ultralytics
            # loads its engine, so that errors of the emotion engine still carry TensorRT's reason.
            from emoedge.formats.tensorrt import claim_logging, import_tensorrt

            claim_logging(import_tensorrt())
        try:
            with _torch_threads_kept():  # reading `names` of an exported model sets up a predictor too
                self.model = ultralytics.YOLO(str(weights), task="detect")
                names = self.model.names
        except Exception as exc:  # Ultralytics raises many types for unreadable or foreign files
            raise EmoedgeError(f"detector {weights}: Ultralytics cannot load it ({_first_line(exc)})") from None
        first = str(names.get(PERSON, "")) if isinstance(names, dict) else ""
        if first and not first.isdigit() and first != "person":
            raise EmoedgeError(
                f"detector {weights}: class {PERSON} is {first!r}, expected 'person' (a COCO-trained YOLO model)"
            )
        self._args: dict[str, Any] = {
            "classes": [PERSON], "conf": TRACK_CONF, "verbose": False, "device": _ultralytics_device(device)
        }  # fmt: skip
        if size is not None:
            self._args["imgsz"] = size
        self._set_up_predictor(weights)
        self.tracker = BoxTracker(detect_every)
        at = f" at {size} px" if size is not None else ""
        every = f", every {detect_every} frames" if detect_every > 1 else ""
        self.name = f"YOLO {weights.name}{at}{every} + ByteTrack"

    def _set_up_predictor(self, weights: Path) -> None:
        """Build Ultralytics' predictor with one prediction on a blank frame, keeping torch's thread count.

        Every later call passes the same arguments, so the predictor is never rebuilt. A device or backend
        Ultralytics cannot use fails here, as one line, not on the first frame.
        """
        try:
            with _torch_threads_kept():
                self.model.predict(np.zeros((32, 32, 3), np.uint8), **self._args)
        except Exception as exc:  # as for loading: many types, for unusable devices and missing backends
            raise EmoedgeError(f"detector {weights}: Ultralytics cannot run it ({_first_line(exc)})") from None

    def __call__(self, frame: Frame) -> Persons:
        shape = frame.image.shape[:2]
        if not self.tracker.detects():
            return self.tracker.coast(shape)
        return self.tracker(*self._boxes(frame), shape)

    def _boxes(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and confidences of the persons in a frame due for detection."""
        return self.detect([frame.image])[0]

    def detect(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Person boxes [n,4] and confidences [n] of each image, in ONE batched prediction and untracked (a
        multi-stream run tracks each stream apart). The confidence floor is the one `model.track` uses (0.1:
        ByteTrack's second stage matches low-confidence boxes), so tracks come out as `track`'s would."""
        results = self.model.predict(images, **self._args)
        return [(r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy()) for r in results]

    def unused(self) -> list[str]:
        return []  # a detector finds persons, it is given none


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Ultralytics' predictor set-up (`select_device`) sets torch to one thread per core less; put the count back."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _first_line(exc: Exception) -> str:
    """The gist of an Ultralytics error, whose messages run over several lines."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _ultralytics_device(device: str) -> str | None:
    """emoedge's device string as Ultralytics spells it; None lets Ultralytics choose ("auto")."""
    kind, _, index = device.partition(":")
    if kind in ("cuda", "tensorrt"):
        return f"cuda:{index or 0}"
    return "cpu" if kind == "cpu" else None


class BoxTracker:
    """ByteTrack on given boxes: the tracker `model.track` uses, fed with boxes instead of detections.

    With `detect_every` K, boxes come on every K-th frame (`detects`) and `coast` carries the tracks through the
    frames between: the tracker steps with no detections, so its Kalman filter predicts every track one frame on
    (its tracks turn "lost", and the next detections find them again, ids kept, as they find a briefly hidden
    person), and the tracks confirmed at the last detection are given at their predicted boxes.

    Ids are numbered 1, 2, ... in the order tracks are first confirmed, from `ids` when given: the trackers of a
    multi-stream run share one counter, so no two streams' persons ever carry the same id.
    """

    def __init__(self, detect_every: int = 1, ids: Iterator[int] | None = None) -> None:
        check_detect_every(detect_every)
        import_ultralytics()
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        self._tracker = BYTETracker(IterableSimpleNamespace(**YAML.load(check_yaml(TRACKER))))
        self.detect_every = detect_every
        self._frames = 0
        self._detected_at = 0  # the tracker's frame id at the last detection
        self._ids = itertools.count(1) if ids is None else ids
        self._given: dict[int, int] = {}  # ByteTrack's id → the id emoedge gives

    def detects(self) -> bool:
        """Whether this frame needs boxes: the first, then every `detect_every`-th."""
        return self._frames % self.detect_every == 0

    def __call__(self, boxes: np.ndarray, confidences: np.ndarray, shape: tuple[int, int]) -> Persons:
        """Persons for the boxes the tracker confirms this frame (a new box appears from its second frame on)."""
        tracks = self._step(np.concatenate([boxes, confidences[:, None], np.full((len(boxes), 1), PERSON)], 1), shape)
        self._detected_at = self._tracker.frame_id
        if len(tracks) == 0:
            return Persons.empty()
        index = tracks[:, -1].astype(np.int64)  # the detection each track matched: keep the given box, not Kalman's
        return Persons(boxes[index], self._numbered(tracks[:, 4]), confidences[index])

    def coast(self, shape: tuple[int, int]) -> Persons:
        """A frame without boxes: the tracks confirmed at the last detection, at their predicted boxes."""
        self._step(np.zeros((0, 6)), shape)
        carried = [t for t in self._tracker.lost_stracks if t.frame_id == self._detected_at and t.is_activated]
        if not carried:
            return Persons.empty()
        height, width = shape
        boxes = np.array([t.xyxy for t in carried], np.float32)
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # a track predicted out of the frame: gone
        ids = self._numbered(np.array([t.track_id for t in carried])[keep])
        return Persons(boxes[keep], ids, np.array([t.score for t in carried], np.float32)[keep])

    def _numbered(self, tracker_ids: np.ndarray) -> np.ndarray:
        """The ids emoedge gives for ByteTrack's (new ones take the next number of the shared counter)."""
        return np.array([self._given.setdefault(int(t), next(self._ids)) for t in tracker_ids], np.int64)

    def _step(self, data: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        from ultralytics.engine.results import Boxes

        self._frames += 1
        return self._tracker.update(Boxes(data.astype(np.float32), shape), None)


# ------------------------------------------------------------------------------------------- boxes file


class BoxesDetector:
    """Persons read from a boxes file (JSON or CSV, see the module docstring) by frame index or image file name."""

    def __init__(self, path: Path, *, detect_every: int = 1, ids: Iterator[int] | None = None) -> None:
        """`detect_every` K: a file without ids is read on every K-th frame only, ByteTrack carrying the tracks
        between, as with a detector (a file with ids gives every frame as it is, its ids kept); `ids`: the id
        counter ByteTrack's tracks take their ids from (see `BoxTracker`)."""
        check_detect_every(detect_every)
        self.path = Path(path)
        self.frames, has_ids = load_boxes(path)
        self._by_name = any(isinstance(key, str) for key in self.frames)
        self._asked: set[int | str] = set()
        self._tracker = None if has_ids else _box_tracker(path, detect_every, ids)
        every = f", every {detect_every} frames" if detect_every > 1 and not has_ids else ""
        self.name = f"boxes file {self.path.name}" + ("" if has_ids else f"{every} + ByteTrack")

    def __call__(self, frame: Frame) -> Persons:
        key = frame.name if self._by_name else frame.index
        if key is None:
            raise EmoedgeError(
                f"boxes file {self.path} names image files, but the source is not an image folder; give frame "
                "indices ('index' in JSON, a 'frame' column in CSV)"
            )
        self._asked.add(key)
        persons = self.frames.get(key, Persons.empty())
        if self._tracker is None:
            return persons
        if not self._tracker.detects():
            return self._tracker.coast(frame.image.shape[:2])
        return self._tracker(persons.boxes, persons.confidences, frame.image.shape[:2])

    def unused(self) -> list[str]:
        left = sorted(key for key in self.frames if key not in self._asked)  # all of one type: indices or names
        return [f"file {key!r}" if self._by_name else f"frame {key}" for key in left]


def _box_tracker(path: Path, detect_every: int, ids: Iterator[int] | None) -> BoxTracker:
    try:
        return BoxTracker(detect_every, ids)
    except EmoedgeError:
        raise EmoedgeError(
            f"boxes file {path} gives no track ids: add them ('ids' in JSON, an 'id' column in CSV), or install "
            f"Ultralytics to track the boxes ({INSTALL_HINT})"
        ) from None


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
