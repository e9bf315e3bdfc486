"""`run` end to end: every frame tagged, one event per person and frame, a playable MP4, stable track ids, reuse
with `every`, the demo clip, the YOLO path, a clean stop on SIGINT, and one-line errors."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import Background, count_lines  # type: ignore[import-not-found]
from runtime.runtime_media import (  # type: ignore[import-not-found]
    read_events,
    video_frames,
    write_boxes_json,
    write_clip,
    write_tiny_checkpoint,
)

from emoedge.backends import load_model
from emoedge.errors import EmoedgeError
from emoedge.runtime.clip import make_demo_clip
from emoedge.runtime.engine import run
from emoedge.runtime.settings import RunSettings

QUIET = RunSettings(progress=False)


def _ultralytics() -> None:
    """Ultralytics imported the way emoedge imports it (offline, no installs), or skip where it is missing."""
    from emoedge.runtime.yolo import import_ultralytics

    try:
        import_ultralytics()
    except EmoedgeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def backend(model: Path):
    """The checkpoint loaded once (FP32: comparisons between runs are exact)."""
    return load_model(model, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def demo(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_demo_clip(sample_root, tmp_path_factory.mktemp("clip"), images=3, frames_per_image=4, size=(320, 240))


def test_demo_clip_holds_each_image_while_its_persons_move(demo: tuple[Path, Path]) -> None:
    clip, boxes = demo
    assert video_frames(clip) == (12, (320, 240))
    frames = json.loads(boxes.read_text())["frames"]
    assert [f["index"] for f in frames] == list(range(12))
    tracks: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
    for f in frames:
        for box, ident in zip(f["boxes"], f["ids"]):
            tracks[ident].append((f["index"], box))
    assert len(tracks) >= 3
    for ident, seen in tracks.items():
        assert len({index // 4 for index, _ in seen}) == 1, f"track {ident} spans two images"
    moving = [seen for seen in tracks.values() if len(seen) >= 2 and seen[0][1] != seen[-1][1]]
    assert moving, "no person moves while its image is held"


def test_run_tags_every_frame_and_writes_video_and_events(demo, backend, tmp_path: Path) -> None:
    clip, boxes = demo
    summary = run(
        str(clip), backend, boxes=boxes, out=tmp_path / "out.mp4", events=tmp_path / "ev.jsonl", settings=QUIET
    )
    given = json.loads(boxes.read_text())["frames"]
    expected = sum(len(f["boxes"]) for f in given)

    assert summary.frames == 12 and not summary.interrupted
    assert summary.events == expected and summary.inferences == expected
    assert summary.engine_calls == sum(1 for f in given if f["boxes"])
    assert video_frames(tmp_path / "out.mp4") == (12, (320, 240))
    persons, record = read_events(tmp_path / "ev.jsonl")
    assert len(persons) == expected
    for stage in ("decode", "detect", "preprocess", "engine", "render"):
        assert set(record["stages"][stage]) == {"count", "mean_ms", "p50_ms", "p90_ms", "first_p90_ms"}
    assert record["frames"] == 12 and record["fps"] > 0

    # Each event belongs to the person the boxes file gave that id, at that frame, even as the person moves.
    by_frame = {f["index"]: dict(zip(f["ids"], f["boxes"])) for f in given}
    for event in persons:
        assert event["box"] == pytest.approx(by_frame[event["frame"]][event["track_id"]], abs=0.06)
        assert set(event["scores"]) == set(backend.card.categories) and len(event["vad"]) == 3
        assert sum(event["modality_weights"].values()) == pytest.approx(1.0, abs=1e-3)
        thresholds = dict(zip(backend.card.categories, backend.card.thresholds))
        listed = event["categories"]
        assert all(event["scores"][c] >= thresholds[c] - 1e-4 for c in listed)
        assert {c for c, s in event["scores"].items() if s >= thresholds[c] + 1e-4} <= set(listed)
        assert [event["scores"][c] for c in listed] == sorted((event["scores"][c] for c in listed), reverse=True)


def test_every_k_reuses_results_and_still_infers_new_tracks(tmp_path: Path, backend) -> None:
    boxes = write_clip(tmp_path / "clip.mp4", frames=7, persons=2)
    boxes[3].append([130.0, 80.0, 150.0, 110.0])  # a third person, in frame 3 only
    path = write_boxes_json(tmp_path / "boxes.json", boxes)
    summary = run(
        str(tmp_path / "clip.mp4"),
        backend,
        boxes=path,
        events=tmp_path / "ev.jsonl",
        settings=RunSettings(every=3, progress=False),
    )
    persons, _ = read_events(tmp_path / "ev.jsonl")
    inferred = defaultdict(list)
    for event in persons:
        inferred[event["track_id"]].append((event["frame"], event["inferred"]))
    assert inferred[10] == [(t, t % 3 == 0) for t in range(7)]
    assert inferred[12] == [(3, True)]  # new tracks are always inferred
    assert summary.inferences == 3 + 3 + 1 and summary.engine_calls == 3
    assert summary.events == 15


def test_an_image_folder_keeps_each_image_in_its_place_and_shape(
    tmp_path: Path, backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Mixed sizes and an unreadable image: every other image gets its own boxes (given by file name), the video
    letterboxes the odd-shaped one into the first one's size, and the boxes of the unreadable image are named."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (w, h) in enumerate([(160, 120), (160, 120), (120, 160), (160, 120)]):
        cv2.imwrite(str(folder / f"img_{i}.png"), np.full((h, w, 3), 90, np.uint8))
    (folder / "img_1.png").write_bytes(b"truncated")
    boxes = tmp_path / "boxes.json"
    given = {f"img_{i}.png": [[10.0 + i, 10.0, 60.0, 90.0]] for i in range(4)}
    boxes.write_text(json.dumps({"frames": [{"file": n, "boxes": b, "ids": [5]} for n, b in given.items()]}))
    with caplog.at_level(logging.WARNING):
        summary = run(str(folder), backend, boxes=boxes, out=tmp_path / "o.mp4", events=tmp_path / "e.jsonl",
                      settings=QUIET)  # fmt: skip
    persons, record = read_events(tmp_path / "e.jsonl")
    assert [(e["frame"], e["box"]) for e in persons] == [(i, given[f"img_{i}.png"][0]) for i in (0, 2, 3)]
    assert summary.frames == record["frames"] == 3
    assert video_frames(tmp_path / "o.mp4") == (3, (160, 120))
    assert "boxes file boxes.json: 1 entry matched no frame: file 'img_1.png'" in caplog.messages


def test_onnx_model_gives_the_checkpoint_scores(demo, model: Path, backend, tmp_path: Path) -> None:
    from emoedge.export.onnx import export_onnx

    clip, boxes = demo
    onnx_path = export_onnx(model, tmp_path / "tiny.onnx").path
    run(
        str(clip),
        backend,
        boxes=boxes,
        events=tmp_path / "torch.jsonl",
        settings=RunSettings(smooth=0.0, progress=False),
    )
    run(
        str(clip),
        onnx_path,
        boxes=boxes,
        events=tmp_path / "onnx.jsonl",
        settings=RunSettings(smooth=0.0, device="cpu", progress=False),
    )
    ours, _ = read_events(tmp_path / "torch.jsonl")
    theirs, summary = read_events(tmp_path / "onnx.jsonl")
    assert "onnxruntime" in summary["backend"]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a["frame"], a["track_id"]) == (b["frame"], b["track_id"])
        assert np.allclose(list(a["scores"].values()), list(b["scores"].values()), atol=2e-3)


@pytest.mark.parametrize("max_frames", [None, 5])
def test_detecting_ahead_gives_the_same_events(tmp_path: Path, backend, max_frames: int | None) -> None:
    """--overlap on: the detector one frame ahead on its own thread; every record the same as in turn, the thread
    stopped when the run ends early, and the summary says it overlapped."""
    boxes = write_clip(tmp_path / "c.mp4", frames=12, persons=2)
    write_boxes_json(tmp_path / "b.json", boxes, ids=False)  # ByteTrack: the detector's state advances per frame
    logs = {}
    for overlap in ("off", "on"):
        settings = RunSettings(progress=False, overlap=overlap, max_frames=max_frames)
        summary = run(str(tmp_path / "c.mp4"), backend, boxes=tmp_path / "b.json", events=tmp_path / f"{overlap}.jsonl",
                      settings=settings)  # fmt: skip
        assert summary.frames == (max_frames or 12) and summary.settings["overlap"] is (overlap == "on")
        assert summary.stages["decode"].count == summary.frames  # one wait per frame, none for the end
        detected = summary.stages["detect"].count  # ahead, a run cut short has detected up to 2 frames more
        assert detected == summary.frames if overlap == "off" or max_frames is None else detected <= summary.frames + 2
        logs[overlap] = read_events(tmp_path / f"{overlap}.jsonl")[0]
    assert logs["on"] == logs["off"] and logs["on"]
    assert not [t for t in threading.enumerate() if t.name == "emoedge-ahead"]  # the finding thread ended


def test_a_detector_error_ahead_is_the_runs_one_line(tmp_path: Path, backend) -> None:
    write_clip(tmp_path / "c.mp4", frames=4, persons=1)
    (tmp_path / "b.json").write_text(json.dumps({"frames": [{"file": "a.jpg", "boxes": [[1, 1, 9, 9]], "ids": [1]}]}))
    with pytest.raises(EmoedgeError, match="names image files, but the source is not an image folder"):
        run(
            str(tmp_path / "c.mp4"),
            backend,
            boxes=tmp_path / "b.json",
            settings=RunSettings(progress=False, overlap="on"),
        )
    with pytest.raises(EmoedgeError, match="overlap 'maybe': expected one of 'auto', 'on', 'off'"):
        RunSettings(overlap="maybe")


def test_boxes_without_ids_are_tracked_with_stable_ids(tmp_path: Path, backend) -> None:
    _ultralytics()
    boxes = write_clip(tmp_path / "clip.mp4", frames=20, persons=2)
    path = write_boxes_json(tmp_path / "boxes.json", boxes, ids=False)
    summary = run(str(tmp_path / "clip.mp4"), backend, boxes=path, events=tmp_path / "ev.jsonl", settings=QUIET)
    persons, _ = read_events(tmp_path / "ev.jsonl")
    assert summary.frames == 20 and "ByteTrack" in summary.detector
    # Which person (left or right) each id is, from the given boxes: the mapping never changes.
    owner = {}
    for event in persons:
        person = [round(v, 1) for v in event["box"]] == boxes[event["frame"]][1]
        assert owner.setdefault(event["track_id"], person) == person
    assert len(owner) == 2 and len(persons) == 40


def test_yolo_detector_path_runs_on_the_clip(demo, backend, tmp_path: Path) -> None:
    """An untrained YOLO (built from Ultralytics' model YAML) finds little or nothing; the path must still run."""
    _ultralytics()
    clip, _ = demo
    summary = run(
        str(clip),
        backend,
        detector="yolo11n.yaml",
        out=tmp_path / "out.mp4",
        events=tmp_path / "ev.jsonl",
        settings=QUIET,
    )
    assert summary.frames == 12 and summary.detector.startswith("YOLO yolo11n.yaml")
    assert video_frames(tmp_path / "out.mp4") == (12, (320, 240))
    persons, record = read_events(tmp_path / "ev.jsonl")
    assert len(persons) == summary.events and record["stages"]["detect"]["count"] == 12


SCRIPT = """
import sys
from pathlib import Path
from emoedge.runtime.engine import run
from emoedge.runtime.settings import RunSettings
summary = run(sys.argv[1], Path(sys.argv[2]), boxes=Path(sys.argv[3]), out=Path(sys.argv[4]), events=Path(sys.argv[5]),
              settings=RunSettings(device="cpu", progress=False))
print("interrupted" if summary.interrupted else "finished", summary.frames, flush=True)
"""


def test_sigint_stops_cleanly_with_a_playable_video_and_whole_log_lines(tmp_path: Path, model: Path) -> None:
    frames = 1500  # far more than are processed before the signal arrives
    boxes = write_clip(tmp_path / "clip.mp4", frames=frames, persons=2)
    write_boxes_json(tmp_path / "boxes.json", boxes)
    out, events = tmp_path / "out.mp4", tmp_path / "ev.jsonl"
    args = [str(tmp_path / "clip.mp4"), str(model), str(tmp_path / "boxes.json"), str(out), str(events)]
    with Background([sys.executable, "-c", SCRIPT, *args], tmp_path / "logs") as proc:
        proc.wait_until(lambda: count_lines(events) >= 10, "10 events")
        proc.interrupt(signal.SIGINT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[0] == "interrupted", proc.stdout
    persons, summary = read_events(events)  # every line parses: none is half-written
    processed = {event["frame"] for event in persons}
    assert summary["interrupted"] and 5 <= summary["frames"] < frames
    assert processed == set(range(summary["frames"])) and len(persons) == 2 * summary["frames"]
    decoded, size = video_frames(out)
    assert decoded == summary["frames"] and size == (160, 120)


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing_boxes", "boxes file"),
        ("malformed_boxes", "frames[1].boxes[0]"),
        ("missing_detector", "download yolo11n.pt"),
        ("wrong_model", "unknown model file type"),
        ("bad_every", "every 0"),
    ],
)
def test_user_errors_are_one_line(case: str, needle: str, demo, model: Path, tmp_path: Path) -> None:
    clip, boxes = demo
    kwargs: dict = {"boxes": boxes}
    settings: dict = {"progress": False}
    if case == "missing_boxes":
        kwargs["boxes"] = tmp_path / "nope.json"
    elif case == "malformed_boxes":
        kwargs["boxes"] = tmp_path / "bad.json"
        kwargs["boxes"].write_text('{"frames": [{"index": 0, "boxes": []}, {"index": 1, "boxes": [[1, 2, 3]]}]}')
    elif case == "missing_detector":
        kwargs = {"detector": tmp_path / "yolo11n.pt"}
    elif case == "wrong_model":
        model = tmp_path / "model.txt"
        model.write_text("not a model")
    else:
        settings["every"] = 0
    with pytest.raises(EmoedgeError) as info:
        run(str(clip), model, settings=RunSettings(**settings), **kwargs)
    message = str(info.value)
    assert needle in message and "\n" not in message, message
