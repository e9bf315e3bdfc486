"""Persons from boxes files (JSON, CSV, with or without ids) and from Ultralytics YOLO + ByteTrack; one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runtime.runtime_media import moving_boxes  # type: ignore[import-not-found]

from emoedge.errors import EmoedgeError
from emoedge.runtime.detect import (
    BoxesDetector,
    BoxTracker,
    YoloDetector,
    load_boxes,
    open_detector,
)
from emoedge.runtime.sources import Frame

FRAME = np.zeros((120, 160, 3), np.uint8)

JSON_OK = '{"frames": [{"index": 0, "boxes": [[1, 2, 30, 40], [50, 5, 80, 90]], "ids": [7, 3]}, {"index": 2, "boxes": []}]}'
CSV_OK = "frame,x1,y1,x2,y2,id\n0,1,2,30,40,7\n0,50,5,80,90,3\n"


@pytest.mark.parametrize(("name", "text"), [("b.json", JSON_OK), ("b.csv", CSV_OK)])
def test_boxes_file_formats_give_the_same_persons(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    frames, has_ids = load_boxes(tmp_path / name)
    assert has_ids
    assert frames[0].boxes.tolist() == [[1, 2, 30, 40], [50, 5, 80, 90]] and frames[0].ids.tolist() == [7, 3]
    detector = BoxesDetector(tmp_path / name)
    assert detector(Frame(0, 0.0, FRAME)).ids.tolist() == [7, 3]
    assert len(detector(Frame(1, 0.04, FRAME))) == 0  # a frame without an entry has no persons


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("b.json", "{not json", "not valid JSON"),
        ("b.json", '{"boxes": []}', "'frames' list"),
        ("b.json", '{"frames": [{"boxes": []}]}', "frames[0]: missing field 'index'"),
        ("b.json", '{"frames": [{"index": -1, "boxes": []}]}', "frames[0].index"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[5, 5, 2, 9]]}]}', "frames[0].boxes[0]"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1, 1, 4, 4]], "ids": [1, 2]}]}', "frames[0].ids"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1, 1, 4, 4]], "id": [1]}]}', "unknown field(s) ['id']"),
        ("b.json", '{"frames": [{"index": 0, "boxes": []}, {"index": 0, "boxes": []}]}', "listed twice"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1,1,4,4],[5,5,9,9]], "ids": [2, 2]}]}', "appears twice"),
        ("b.json", '{"frames": [{"index": 0, "boxes": [[1,1,4,4]], "ids": [1]}, {"index": 1, "boxes": [[1,1,4,4]]}]}', "all or none"),
        ("b.csv", "frame,x,y,w,h\n", "expected frame,x1,y1,x2,y2"),
        ("b.csv", "frame,x1,y1,x2,y2\n0,1,2,abc,4\n", "line 2 column 'x2'"),
        ("b.csv", "frame,x1,y1,x2,y2,id\n0,1,2,3,4\n", "line 2: expected 6 columns"),
        ("b.txt", "", "expected a .json or .csv file"),
    ],
)
def test_malformed_boxes_files_name_the_field(tmp_path: Path, name: str, text: str, needle: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(EmoedgeError) as info:
        load_boxes(tmp_path / name)
    assert needle in str(info.value) and str(tmp_path / name) in str(info.value), str(info.value)


def test_missing_and_foreign_detector_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(EmoedgeError, match=r"yolo11n\.pt not found.*download yolo11n\.pt.*--detector PATH"):
        YoloDetector(tmp_path / "yolo11n.pt")
    with pytest.raises(EmoedgeError, match=r"expected Ultralytics YOLO weights"):
        YoloDetector(tmp_path / "weights.bin")
    with pytest.raises(EmoedgeError, match="not both"):
        open_detector(tmp_path / "yolo11n.pt", tmp_path / "b.json")
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    pytest.importorskip("ultralytics")
    with pytest.raises(EmoedgeError, match="Ultralytics cannot load it"):
        YoloDetector(tmp_path / "broken.pt")


def test_bytetrack_keeps_ids_of_given_moving_boxes() -> None:
    pytest.importorskip("ultralytics")
    tracker = BoxTracker()
    seen: dict[int, int] = {}
    boxes = moving_boxes(12, 3, (160, 120))
    for t, frame_boxes in enumerate(boxes):
        given = np.asarray(frame_boxes, np.float32)
        persons = tracker(given, np.ones(len(given), np.float32), (120, 160))
        assert len(persons) == 3
        for box, ident in zip(persons.boxes.tolist(), persons.ids.tolist()):
            person = frame_boxes.index(box)  # the given box comes back, not the tracker's estimate
            assert seen.setdefault(ident, person) == person
    assert sorted(seen.values()) == [0, 1, 2]


def test_yolo_model_from_yaml_runs_detection_and_tracking_without_stealing_threads() -> None:
    pytest.importorskip("ultralytics")
    import torch

    threads = torch.get_num_threads()
    detector = YoloDetector("yolo11n.yaml", device="cpu")
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for index in range(3):
        persons = detector(Frame(index, index / 25, image))
        assert persons.boxes.shape[1] == 4 and len(persons.ids) == len(persons)
    assert torch.get_num_threads() == threads
