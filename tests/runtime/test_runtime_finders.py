"""Persons from boxes files (JSON, CSV, with or without ids) and from Ultralytics YOLO, tracked per stream by
ByteTrack (coasting between detections); one-line errors; Ultralytics configured once, offline, and kept off torch's
thread count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]

from emoedge.bench.clip import moving_boxes
from emoedge.errors import EmoedgeError
from emoedge.runtime.boxes import BoxesFile, load_boxes
from emoedge.runtime.finders import Found, PersonFinder, YoloFinder
from emoedge.runtime.persons import Persons
from emoedge.runtime.sources import Frame
from emoedge.runtime.tracking import Tracker
from emoedge.runtime.yolo import import_ultralytics

FRAME = np.zeros((120, 160, 3), np.uint8)

JSON_OK = (
    '{"frames": [{"index": 0, "boxes": [[1, 2, 30, 40], [50, 5, 80, 90]], "ids": [7, 3]}, {"index": 2, "boxes": []}]}'
)
CSV_OK = "frame,x1,y1,x2,y2,id\n0,1,2,30,40,7\n0,50,5,80,90,3\n"


@pytest.mark.parametrize(("name", "text"), [("b.json", JSON_OK), ("b.csv", CSV_OK)])
def test_boxes_file_formats_give_the_same_persons(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    frames, has_ids = load_boxes(tmp_path / name)
    assert has_ids
    assert frames[0].boxes.tolist() == [[1, 2, 30, 40], [50, 5, 80, 90]] and frames[0].ids.tolist() == [7, 3]
    first, second = BoxesFile(tmp_path / name).find([Frame(0, 0.0, FRAME), Frame(1, 0.04, FRAME)])
    assert first.ids is not None and first.ids.tolist() == [7, 3]
    assert len(second.boxes) == 0  # a frame without an entry has no persons


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("b.json", "{not json", "not valid JSON"),
        ("b.json", '{"boxes": []}', "'frames' list"),
        ("b.json", '{"frames": [{"boxes": []}]}', "frames[0]: expected one of 'index' (frame) or 'file'"),
        ("b.json", '{"frames": [{"index": -1, "boxes": []}]}', "frames[0].index"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[5, 5, 2, 9]]}]}', "frames[0].boxes[0]"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1, 1, 4, 4]], "ids": [1, 2]}]}', "frames[0].ids"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1, 1, 4, 4]], "id": [1]}]}', "unknown field(s) ['id']"),
        ("b.json", '{"frames": [{"index": 0, "boxes": []}, {"index": 0, "boxes": []}]}', "listed twice"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1,1,4,4],[5,5,9,9]], "ids": [2, 2]}]}', "appears twice"),
        (
            "b.json",
            '{"frames": [{"index": 0, "boxes": [[1,1,4,4]], "ids": [1]}, {"index": 1, "boxes": [[1,1,4,4]]}]}',
            "all or none",
        ),
        ("b.csv", "frame,x,y,w,h\n", "expected frame,x1,y1,x2,y2"),
        ("b.csv", "frame,x1,y1,x2,y2\n0,1,2,abc,4\n", "line 2 column 'x2'"),
        ("b.csv", "frame,x1,y1,x2,y2,id\n0,1,2,3,4\n", "line 2: expected 6 columns"),
        ("b.txt", "", "expected a .json or .csv file"),
        ("b.json", '{"frames": [{"index": NaN, "boxes": []}]}', "frames[0].index: nan is not a frame index"),
        ("b.json", '{"frames": [{"index": Infinity, "boxes": []}]}', "frames[0].index: inf is not a frame index"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1,1,4,4]], "ids": [-Infinity]}]}', "frames[0].ids[0]: -inf"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1,1,NaN,4]]}]}', "frames[0].boxes[0]"),
        ("b.csv", "frame,x1,y1,x2,y2\nnan,1,2,3,4\n", "line 2 column 'frame': nan is not a frame index"),
        ("b.csv", "frame,x1,y1,x2,y2,id\n0,1,2,3,4,inf\n", "line 2 column 'id': inf is not a track id"),
        ("b.csv", "frame,x1,y1,x2,y2\n0,1,2,1e999,4\n", "line 2: [1.0, 2.0, inf, 4.0] is not a box"),
    ],
)
def test_malformed_boxes_files_name_the_field(tmp_path: Path, name: str, text: str, needle: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(EmoedgeError) as info:
        load_boxes(tmp_path / name)
    assert needle in str(info.value) and str(tmp_path / name) in str(info.value), str(info.value)


def test_boxes_files_that_are_not_utf8_name_the_line_and_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes("frame,x1,y1,x2,y2\n0,1,2,30,40\n1,1,2,30,40 caf\xe9\n".encode("latin-1"))
    with pytest.raises(EmoedgeError) as info:
        load_boxes(path)
    assert str(info.value) == (
        f"boxes file {path}: line 3: not UTF-8 text (byte 45, 0xe9, cannot be decoded); save the file as UTF-8"
    )
    path.write_bytes("\ufeffframe,x1,y1,x2,y2\n0,1,2,30,40\n".encode())  # as spreadsheets save CSV
    assert list(load_boxes(path)[0]) == [0]


def test_missing_and_foreign_detector_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(EmoedgeError, match=r"yolo11n\.pt not found.*download yolo11n\.pt.*--detector PATH"):
        YoloFinder(tmp_path / "yolo11n.pt")
    with pytest.raises(EmoedgeError, match=r"expected Ultralytics YOLO weights"):
        YoloFinder(tmp_path / "weights.bin")
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    _needs_ultralytics()
    with pytest.raises(EmoedgeError, match="Ultralytics cannot load it"):
        YoloFinder(tmp_path / "broken.pt")


def _persons(finder: PersonFinder, tracker: Tracker, frame: Frame) -> Persons:
    """One frame through a finder and a stream's tracker, as the run's loop takes it."""
    return tracker(finder.find([frame])[0] if tracker.due() else None, frame.image.shape[:2])


def test_bytetrack_keeps_ids_of_given_moving_boxes() -> None:
    _needs_ultralytics()
    tracker = Tracker()
    seen: dict[int, int] = {}
    boxes = moving_boxes(12, 3, (160, 120))
    for frame_boxes in boxes:
        given = np.asarray(frame_boxes, np.float32)
        persons = tracker(Found(given, np.ones(len(given), np.float32)), (120, 160))
        assert len(persons) == 3
        for box, ident in zip(persons.boxes.tolist(), persons.ids.tolist()):
            person = frame_boxes.index(box)  # the given box comes back, not the tracker's estimate
            assert seen.setdefault(ident, person) == person
    assert sorted(seen.values()) == [0, 1, 2]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


@pytest.mark.parametrize("every", [1, 3, 5])
def test_detect_every_carries_moving_tracks_between_detections(tmp_path: Path, every: int) -> None:
    """Boxes (no ids) given on every k-th frame only: ByteTrack's prediction keeps each person on one id, its box
    close to the true one, and no frame loses a person."""
    _needs_ultralytics()
    truth = moving_boxes(40, 3, (320, 240))
    frames = [{"index": i, "boxes": b} for i, b in enumerate(truth)]
    (tmp_path / "b.json").write_text(json.dumps({"frames": frames}))
    finder, tracker = BoxesFile(tmp_path / "b.json"), Tracker(every)
    ids: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    worst = 1.0
    for index, boxes in enumerate(truth):
        frame = Frame(index, index / 25, np.zeros((240, 320, 3), np.uint8))
        given = finder.find([frame])[0]  # a boxes file is read on every frame (a look-up), as the run does
        persons = tracker(given if tracker.due() else None, frame.image.shape[:2])
        assert len(persons) == 3, index
        for box, ident in zip(persons.boxes, persons.ids.tolist()):
            overlaps = [_iou(box, np.asarray(t)) for t in boxes]
            person = int(np.argmax(overlaps))
            worst = min(worst, overlaps[person])
            ids[person].add(ident)
    print(f"detect_every {every}: worst IoU of a carried box {worst:.3f}; ids per person {ids}")
    assert all(len(seen) == 1 for seen in ids.values())  # at most one id switch allowed; none happens
    assert worst >= {1: 0.99, 3: 0.65, 5: 0.5}[every]  # measured 1.0, 0.705, 0.552: the persons turn round
    assert finder.unused() == []  # the boxes of the frames between detections were not needed, and not missed


def test_yolo_runs_on_every_kth_frame_only(monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_ultralytics()
    import torch

    detector, tracker = YoloFinder("yolo11n.yaml", device="cpu", size=320), Tracker(3)
    with torch.no_grad():  # an untrained head sees nothing: bias it so that anchors score 'person'
        for branch in detector.model.predictor.model.model.model[-1].cv3:
            branch[-1].bias[0] = 8.0
    calls: list[int] = []
    real = detector.find
    monkeypatch.setattr(detector, "find", lambda frames: calls.append(len(frames)) or real(frames))
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    counts = [len(_persons(detector, tracker, Frame(i, i / 25, image))) for i in range(7)]
    assert calls == [1, 1, 1] and counts[0] > 0 and all(c == counts[0] for c in counts[1:3])  # frames 0, 3, 6
    assert detector.name == "YOLO yolo11n.yaml at 320 px"


def _needs_ultralytics() -> None:
    """Skip without Ultralytics; import it the way the runtime does (offline, no installs), never plainly."""
    try:
        import_ultralytics()
    except EmoedgeError as exc:
        pytest.skip(str(exc))


def test_yolo_detector_sets_up_once_and_never_touches_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_ultralytics()
    import torch
    from ultralytics.utils import NUM_THREADS

    threads = torch.get_num_threads()
    torch.set_num_threads(NUM_THREADS + 1)  # not the count Ultralytics sets, so that a change shows
    try:
        detector, tracker = YoloFinder("yolo11n.yaml", device="cpu"), Tracker()
        assert torch.get_num_threads() == NUM_THREADS + 1
        predictor = detector.model.predictor
        calls: list[int] = []
        monkeypatch.setattr(torch, "set_num_threads", calls.append)  # by Ultralytics or by the detector
        image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        for index in range(3):
            persons = _persons(detector, tracker, Frame(index, index / 25, image))
            assert persons.boxes.shape[1] == 4 and len(persons.ids) == len(persons)
        assert calls == [] and torch.get_num_threads() == NUM_THREADS + 1
        assert detector.model.predictor is predictor  # set up once, never rebuilt
    finally:
        monkeypatch.undo()
        torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", ["onnx", "openvino"])
def test_exported_detectors_load_and_keep_torch_threads(tmp_path: Path, kind: str) -> None:
    """Ultralytics' exporter's files (ONNX; the OpenVINO folder where openvino is installed) run as detectors, and
    loading them leaves torch's thread count alone (reading an exported model's names sets up a predictor)."""
    _needs_ultralytics()
    if kind == "openvino":
        pytest.importorskip("openvino")
    import torch

    ultralytics = import_ultralytics()
    ultralytics.YOLO("yolo11n.yaml").save(tmp_path / "yolo11n.pt")
    threads = torch.get_num_threads()
    try:
        exported = Path(ultralytics.YOLO(str(tmp_path / "yolo11n.pt")).export(format=kind, imgsz=160, verbose=False))
        torch.set_num_threads(threads)  # the exporter's own setting, not the detector's
        detector = YoloFinder(exported, device="cpu", size=160)
        assert torch.get_num_threads() == threads
        assert len(detector.find([Frame(0, 0.0, np.zeros((120, 160, 3), np.uint8))])[0].boxes) == 0  # untrained
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(threads)


def test_yolo_detector_ids_start_fresh_after_the_set_up() -> None:
    _needs_ultralytics()
    import torch

    detector = YoloFinder("yolo11n.yaml", device="cpu")
    with torch.no_grad():  # an untrained head sees nothing: bias it so that every anchor scores 'person'
        for branch in detector.model.predictor.model.model.model[-1].cv3:
            branch[-1].bias[0] = 8.0
    persons = _persons(detector, Tracker(), Frame(0, 0.0, np.zeros((120, 160, 3), np.uint8)))
    assert len(persons) > 0 and sorted(persons.ids.tolist()) == list(range(1, len(persons) + 1))


SCRIPT = """
import json, os
from collections.abc import MutableMapping
{before}
from emoedge.runtime.yolo import import_ultralytics

class Recording(MutableMapping):
    def __init__(self, environ):
        self.environ, self.writes = environ, []
    def __getitem__(self, key):
        return self.environ[key]
    def __setitem__(self, key, value):
        self.writes.append(key)
        self.environ[key] = value
    def __delitem__(self, key):
        self.writes.append(key)
        del self.environ[key]
    def __iter__(self):
        return iter(self.environ)
    def __len__(self):
        return len(self.environ)

import_ultralytics()
os.environ = recording = Recording(os.environ)
import_ultralytics()
os.environ = recording.environ
import torch
from ultralytics import utils
print(json.dumps({{
    "env": [os.environ.get(k) for k in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE")],
    "second_call_writes": recording.writes,
    "ultralytics": [utils.ONLINE, utils.AUTOINSTALL, utils.VERBOSE],
    "threads": torch.get_num_threads(),
}}))
"""


def _fresh_python(code: str) -> tuple[Any, str]:
    """(the JSON `code` prints last, its stderr) from a new interpreter without YOLO_* or OMP_NUM_THREADS set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_") and k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_ultralytics_is_configured_before_its_first_import_and_never_again() -> None:
    _needs_ultralytics()
    got, _ = _fresh_python(SCRIPT.format(before=""))
    assert got["env"] == ["1", "false", "false"]
    assert got["ultralytics"] == [False, False, False]  # offline, no installs, quiet: read once, at its import
    assert got["second_call_writes"] == []
    torch_alone, _ = _fresh_python("import json, torch; print(json.dumps(torch.get_num_threads()))")
    assert got["threads"] == torch_alone  # not the 1 thread of Ultralytics' OMP_NUM_THREADS default


def test_ultralytics_imported_by_someone_else_keeps_their_environment() -> None:
    _needs_ultralytics()
    before = 'os.environ["YOLO_OFFLINE"] = "1"  # their choice; keeps this test off the network\nimport ultralytics'
    got, stderr = _fresh_python(SCRIPT.format(before=before))
    assert got["env"] == ["1", None, None] and got["second_call_writes"] == []
    assert got["ultralytics"] == [False, True, True]
    assert "imported before emoedge could configure it" in stderr
