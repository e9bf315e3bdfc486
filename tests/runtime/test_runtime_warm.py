"""A run warms before its first frame: every shape bucket its model calls can meet (streams ticked together, up to
WARM_PERSONS persons a frame) runs once, blank, before any frame's call, and the detector runs once at the streams'
frame sizes; the events are those of a run without warming, and the start-up line says what was warmed and how long it
took.

The model is the tiny checkpoint on the CPU. Its bucketed runs set `bucketed` on the loaded backend: the bucket policy
is the base class's, the same code a CUDA-graphed backend runs; the graphs themselves need a GPU (tests/gpu).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime.runtime_media import read_events, write_boxes_json, write_clip  # type: ignore[import-not-found]

from emoedge.backends import Backend, load_model
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError, ModelUnavailable
from emoedge.runtime.engine import WARM_PERSONS, run
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.streams import StreamSpec

FRAMES = 4


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("warm")
    made: dict[str, Any] = {"model": random_checkpoint(folder / "m.pt")}
    for name, size in (("a", (160, 120)), ("b", (96, 64))):
        made[name] = folder / f"{name}.mp4"
        made[f"{name}_boxes"] = write_boxes_json(folder / f"{name}.json", write_clip(made[name], FRAMES, 2, size))
    return made


def _backend(media: dict[str, Any], *, bucketed: bool) -> Backend:
    backend = load_model(media["model"], device="cpu", precision="fp32")
    backend.bucketed = bucketed
    return backend


def _specs(media: dict[str, Any], *, boxes: bool = True) -> list[StreamSpec]:
    return [StreamSpec(name, str(media[name]), media[f"{name}_boxes"] if boxes else None) for name in ("a", "b")]


def _recording(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(F, N) of every model call `backend` makes from now on, in order."""
    calls: list[tuple[int, int]] = []
    inner = backend._infer

    def infer(image: Any, body: Any, frame: Any) -> dict[str, np.ndarray]:
        calls.append((int(image.shape[0]), int(body.shape[0])))
        return inner(image, body, frame)

    monkeypatch.setattr(backend, "_infer", infer)
    return calls


def test_a_run_warms_every_bucket_before_the_first_frame_and_says_how_long(media, monkeypatch, capsys) -> None:
    """Two streams: F buckets 1 and 2, N buckets up to 2 × WARM_PERSONS, all before the frames' calls."""
    backend = _backend(media, bucketed=True)
    shapes = backend.warm_shapes(2, 2 * WARM_PERSONS)
    assert shapes == [(f, n) for f in (1, 2) for n in (1, 2, 4, 8, 16, 32)]
    calls = _recording(backend, monkeypatch)
    summary = run(_specs(media), backend, settings=RunSettings(max_frames=FRAMES))
    assert calls[: len(shapes)] == shapes
    frames_calls = calls[len(shapes) :]
    assert len(frames_calls) == summary.engine_calls == FRAMES and all(c == (2, 4) for c in frames_calls)
    startup = capsys.readouterr().out
    assert re.search(r"^warmed: 12 model shape\(s\) in \d+\.\d s$", startup, re.M), startup


def test_an_unbucketed_model_is_warmed_with_one_call_of_every_frame_and_one_person(media, monkeypatch) -> None:
    backend = _backend(media, bucketed=False)
    calls = _recording(backend, monkeypatch)
    run(_specs(media), backend, settings=RunSettings(progress=False, max_frames=1))
    assert calls == [(2, 1), (2, 4)]


def test_warming_leaves_the_events_as_they_were(media, monkeypatch, tmp_path: Path) -> None:
    backend = _backend(media, bucketed=True)
    settings = RunSettings(progress=False)
    run(_specs(media), backend, events=tmp_path / "warmed.jsonl", settings=settings)
    monkeypatch.setattr(backend, "warm", lambda frames, persons: (0, 0.0))
    calls = _recording(backend, monkeypatch)
    run(_specs(media), backend, events=tmp_path / "cold.jsonl", settings=settings)
    assert calls and calls[0] == (2, 4)  # this run warmed nothing
    warmed, summary = read_events(tmp_path / "warmed.jsonl")
    cold, _ = read_events(tmp_path / "cold.jsonl")
    assert warmed == cold and len(warmed) == summary["events"] == 2 * 2 * FRAMES
    assert summary["engine_calls"] == summary["ticks"] == FRAMES  # the warm-up's calls are not the run's


def test_a_model_that_cannot_be_warmed_is_one_warning_and_the_run_goes_on(media, monkeypatch, caplog) -> None:
    """A served model down at start: its outage is the frame loop's to wait for, not the start's to fail on."""
    backend = _backend(media, bucketed=False)

    def down(frames: int, persons: int) -> tuple[int, float]:
        raise ModelUnavailable("model grpc://127.0.0.1:1/emo: Triton request failed (connection refused)")

    monkeypatch.setattr(backend, "warm", down)
    with caplog.at_level(logging.WARNING, logger="emoedge.runtime.engine"):
        summary = run(_specs(media), backend, settings=RunSettings(progress=False, max_frames=2))
    assert summary.outcome == "completed" and summary.frames == 4
    assert [r.getMessage() for r in caplog.records if "warming" in r.getMessage()] == [
        "warming the model up failed (model grpc://127.0.0.1:1/emo: Triton request failed (connection refused)); "
        "its first frames pay for its set-up"
    ]


def test_the_detector_is_warmed_once_at_the_streams_frame_sizes(media, monkeypatch, capsys) -> None:
    """YOLO built from its YAML (no weights to fetch): its first prediction after its set-up is one blank frame of
    each stream's size, batched as a tick batches them, before any frame's."""
    from emoedge.runtime.finders import YoloFinder
    from emoedge.runtime.yolo import import_ultralytics

    try:
        import_ultralytics()
    except EmoedgeError as exc:
        pytest.skip(str(exc))
    finder = YoloFinder("yolo11n.yaml", device="cpu", size=96)
    seen: list[list[tuple[tuple[int, ...], bool]]] = []
    predict = finder.model.predict

    def recording(images: Any, **kwargs: Any) -> Any:
        seen.append([(image.shape, not image.any()) for image in images])
        return predict(images, **kwargs)

    monkeypatch.setattr(finder.model, "predict", recording)
    backend = _backend(media, bucketed=False)
    run(_specs(media, boxes=False), backend, detector=finder, settings=RunSettings(max_frames=2))
    assert seen[0] == [((120, 160, 3), True), ((64, 96, 3), True)]  # blank, at each stream's size
    assert len(seen) == 3 and all(shapes == [((120, 160, 3), False), ((64, 96, 3), False)] for shapes in seen[1:])
    startup = capsys.readouterr().out
    assert re.search(r"; the detector at 160x120, 96x64 in \d+\.\d s$", startup, re.M), startup
