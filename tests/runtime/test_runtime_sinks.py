"""Event records and their file, the video sink, and drawing (on a copy, never on the decoded frame)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.runtime_media import tiny_card, video_frames  # type: ignore[import-not-found]

from emoedge.categories import CATEGORIES
from emoedge.errors import EmoedgeError
from emoedge.runtime.persons import Persons
from emoedge.runtime.render import above_threshold, draw
from emoedge.runtime.sinks import EventLog, VideoSink, Window, person_record

CARD = tiny_card()


def _persons(vad: bool = True) -> Persons:
    scores = np.full((2, 26), 0.1, np.float32)
    scores[0, [3, 7]] = [0.6, 0.9]  # Anticipation, Disconnection above 0.5; Disconnection first
    persons = Persons.from_arrays([[10, 20, 60, 100], [70, 10, 120, 90]], [4, 9], [0.9, 0.8])
    weights = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], np.float32)
    return persons.with_outputs(
        scores, weights, np.full((2, 3), 5.0, np.float32) if vad else None, np.array([True, False])
    )


def test_person_record_holds_what_the_spec_lists() -> None:
    record = person_record(12, 0.48, _persons(), 0, CARD)
    assert record["type"] == "person" and record["frame"] == 12 and record["time"] == 0.48
    assert record["track_id"] == 4 and record["box"] == [10, 20, 60, 100] and record["inferred"] is True
    assert list(record["scores"]) == list(CATEGORIES)
    assert record["categories"] == ["Disconnection", "Anticipation"]
    assert record["modality_weights"] == {"body": 0.5, "place": 0.3, "scene": 0.2}
    assert record["vad"] == {"valence": 5.0, "arousal": 5.0, "dominance": 5.0}
    assert "vad" not in person_record(0, 0.0, _persons(vad=False), 1, CARD)


def test_event_log_writes_whole_flushed_lines(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    persons = _persons()
    with EventLog(path) as log:
        for i in range(len(persons)):
            log.write(person_record(0, 0.0, persons, i, CARD))
        on_disk = path.read_text()  # flushed after every line, before close
        assert on_disk.endswith("\n") and len(on_disk.splitlines()) == 2
        log.write({"type": "summary"})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["person", "person", "summary"]
    assert log.records == 3


def test_video_sink_finalises_a_readable_mp4_and_resizes_odd_frames(tmp_path: Path) -> None:
    with VideoSink(tmp_path / "v.mp4", 10.0, (64, 48)) as video:
        video.write(np.zeros((48, 64, 3), np.uint8))
        video.write(np.zeros((100, 80, 3), np.uint8))  # e.g. an image folder with another size
    assert video_frames(tmp_path / "v.mp4") == (2, (64, 48))
    with pytest.raises(EmoedgeError, match="cannot write"):
        VideoSink(tmp_path / "missing-dir-as-file" / "x.unknownext", 10.0, (64, 48))


def test_draw_annotates_a_copy() -> None:
    frame = np.full((120, 160, 3), 90, np.uint8)
    before = frame.copy()
    out = draw(frame, _persons(), CARD)
    assert np.array_equal(frame, before) and not np.array_equal(out, frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert draw(frame, Persons.empty(), CARD).shape == frame.shape


def test_above_threshold_uses_the_card_thresholds_highest_first() -> None:
    card = CARD.with_thresholds([0.95] * 26)
    scores = _persons().scores[0]
    assert above_threshold(scores, CARD) == [7, 3] and above_threshold(scores, card) == []


def test_show_without_a_gui_opencv_is_one_line() -> None:
    if not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        pytest.skip("this OpenCV has a GUI backend")
    with pytest.raises(EmoedgeError, match="--show needs OpenCV with GUI support"):
        Window()
