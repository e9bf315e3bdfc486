"""Image folders: every frame keeps its place in the folder (an unreadable image shifts nothing), boxes may name
the image files, and the output video letterboxes images of other sizes instead of stretching them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoedge.errors import EmoedgeError
from emoedge.runtime.boxes import BoxesFile, load_boxes
from emoedge.runtime.sinks import letterbox
from emoedge.runtime.sources import Frame, open_source


def _folder(root: Path) -> Path:
    root.mkdir()
    for i, (w, h) in enumerate([(160, 120), (160, 120), (120, 160), (160, 120)]):
        cv2.imwrite(str(root / f"img_{i:04d}.png"), np.full((h, w, 3), 40 * (i + 1), np.uint8))
    (root / "img_0001.png").write_text("not an image")  # unreadable: frame 1 is skipped
    return root


def test_frames_keep_their_place_and_name_when_an_image_is_unreadable(tmp_path: Path) -> None:
    with open_source(str(_folder(tmp_path / "f"))) as frames:
        got = [(f.index, f.name, f.image.shape[:2]) for f in frames]
    assert got == [(0, "img_0000.png", (120, 160)), (2, "img_0002.png", (160, 120)), (3, "img_0003.png", (120, 160))]


def test_boxes_by_file_name_go_to_their_image(tmp_path: Path) -> None:
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [
        {"file": "img_0002.png", "boxes": [[1, 1, 50, 60]], "ids": [4]},
        {"file": "img_0003.png", "boxes": [[2, 2, 40, 40]], "ids": [4]},
    ]}))  # fmt: skip
    detector = BoxesFile(boxes)
    with open_source(str(_folder(tmp_path / "f"))) as source:
        frames = list(source)
    found = {f.name: given.boxes.tolist() for f, given in zip(frames, detector.find(frames))}
    assert found == {"img_0000.png": [], "img_0002.png": [[1, 1, 50, 60]], "img_0003.png": [[2, 2, 40, 40]]}
    csv = tmp_path / "b.csv"
    csv.write_text("file,x1,y1,x2,y2,id\nimg_0002.png,1,1,50,60,4\n")
    assert list(load_boxes(csv)[0]) == ["img_0002.png"]


def _entries(key: str, values: list) -> list[dict]:
    return [{key: value, "boxes": [[1, 1, 9, 9]], "ids": [1]} for value in values]


@pytest.mark.parametrize(
    ("entries", "unused"),
    [
        (_entries("index", [0, 1, 2, 3, 4]), ["frame 1", "frame 4"]),  # unreadable, past the end
        (
            _entries("file", ["img_0001.png", "img_0003.png", "img_0009.png"]),
            ["file 'img_0001.png'", "file 'img_0009.png'"],
        ),
    ],
)
def test_boxes_no_frame_asked_for_are_named(tmp_path: Path, entries: list, unused: list[str]) -> None:
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": entries}))
    detector = BoxesFile(boxes)
    with open_source(str(_folder(tmp_path / "f"))) as frames:
        detector.find(list(frames))
    assert detector.unused() == unused


def test_boxes_by_file_name_need_an_image_folder(tmp_path: Path) -> None:
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({"frames": [{"file": "img_0000.png", "boxes": [[1, 1, 9, 9]], "ids": [1]}]}))
    with pytest.raises(EmoedgeError, match="names image files, but the source is not an image folder"):
        BoxesFile(boxes).find([Frame(0, 0.0, np.zeros((4, 4, 3), np.uint8))])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"frames": [{"file": "a.png", "index": 1, "boxes": []}]}', "one of 'index' (frame) or 'file'"),
        ('{"frames": [{"file": "../a.png", "boxes": []}]}', "not an image file name"),
        ('{"frames": [{"file": "a.png", "boxes": []}, {"index": 2, "boxes": []}]}', "mixed"),
    ],
)
def test_bad_file_entries_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(text)
    with pytest.raises(EmoedgeError, match="boxes file") as caught:
        load_boxes(path)
    assert needle in str(caught.value)


def test_letterbox_keeps_the_aspect_ratio() -> None:
    tall = np.full((160, 120, 3), 200, np.uint8)
    out = letterbox(tall, (160, 120))
    assert out.shape == (120, 160, 3)
    columns = np.flatnonzero(out[60, :, 0])
    assert columns.min() == 35 and columns.max() == 124  # 90 px wide (120 * 120/160), centred
    assert out[:, :35].max() == 0 and out[:, 125:].max() == 0
