"""A run's streams change while it runs: streams added and removed through `Engine` (and by SIGHUP with an edited
`--sources FILE`) while the others go on frame by frame; observers see each stream's state, rate and tracks."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from cli_helpers import Background, count_lines, emoedge_command, wait_until  # type: ignore[import-not-found]
from runtime.runtime_media import read_events, video_frames  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.bench.clip import write_boxes_json, write_clip
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError
from emoedge.runtime.engine import Engine
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.streams import StreamSpec

QUIET = RunSettings(progress=False, device="cpu")
LONG, SHORT = 400, 30


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("engine")
    made = {"model": random_checkpoint(folder / "m.pt")}
    for name, frames in (("long", LONG), ("other", LONG), ("short", SHORT)):
        made[name] = folder / f"{name}.mp4"
        made[f"{name}_boxes"] = write_boxes_json(folder / f"{name}.json", write_clip(made[name], frames, 2))
    return made


@pytest.fixture(scope="module")
def backend(files: dict[str, Path]):
    return load_model(files["model"], device="cpu", precision="fp32")


def _by_stream(events: Path) -> dict[str, list[int]]:
    persons, _ = read_events(events)
    frames: dict[str, list[int]] = {}
    for record in persons:
        seen = frames.setdefault(record["stream"], [])
        if not seen or seen[-1] != record["frame"]:
            seen.append(record["frame"])
    return frames


def test_streams_added_and_removed_while_the_others_run(files, backend, tmp_path: Path) -> None:
    """A stream joins mid-run and another leaves (its video finalised with the frames its summary counts); the
    stream that stays loses no frame; bad requests are one line each and change nothing."""
    events = tmp_path / "e.jsonl"
    specs = [
        StreamSpec("stays", str(files["long"]), files["long_boxes"]),
        StreamSpec("leaves", str(files["other"]), files["other_boxes"], tmp_path / "leaves.mp4"),
    ]
    engine = Engine(specs, backend, events=events, settings=QUIET)
    errors: list[str] = []
    answers: dict[str, str] = {}

    def script() -> None:
        try:
            wait_until(lambda: count_lines(events) >= 20, "the first events")
            late = StreamSpec("late", str(files["short"]), files["short_boxes"], tmp_path / "late.mp4")
            answers["add"] = engine.add(late).result(timeout=60)
            for bad in (
                StreamSpec("stays", str(files["short"]), files["short_boxes"]),  # a taken id
                StreamSpec("x", str(files["short"]), tmp_path / "missing.json"),  # no boxes file
            ):
                try:
                    engine.add(bad)
                except EmoedgeError as exc:
                    errors.append(str(exc))
            missing = engine.add(StreamSpec("y", str(tmp_path / "none.mp4"), files["short_boxes"]))
            try:
                missing.result(timeout=60)
            except EmoedgeError as exc:
                errors.append(str(exc))
            answers["remove"] = engine.remove("leaves").result(timeout=60)
            try:
                engine.remove("nobody").result(timeout=60)
            except EmoedgeError as exc:
                errors.append(str(exc))
            views = {v.id: v for v in engine.views()}
            answers["views"] = json.dumps({i: (v.state, v.frames > 0) for i, v in views.items()})
        finally:
            engine.stop.request()  # the run ends here, however far the script got

    with engine:
        helper = threading.Thread(target=script, daemon=True)
        helper.start()
        summary = engine.until_done()
        helper.join(30)
    assert answers["add"] == "late" and answers["remove"] == "leaves", answers
    assert errors == [
        "stream id 'stays' is already running",
        f"boxes file {tmp_path / 'missing.json'}: file not found",
        f"video file not found: {tmp_path / 'none.mp4'}",
        "no running stream 'nobody'",
    ]
    outcomes = {s.id: s for s in summary.streams}
    assert outcomes["leaves"].outcome == "removed" and outcomes["late"].outcome in ("ended", "stopped")
    assert video_frames(tmp_path / "leaves.mp4")[0] == outcomes["leaves"].frames > 0  # finalised when it left
    frames = _by_stream(events)
    assert frames["stays"] == list(range(len(frames["stays"])))  # every frame of the stream that stayed, in order
    assert frames["late"] == list(range(outcomes["late"].frames)) and outcomes["late"].frames > 0
    views = json.loads(answers["views"])
    assert views["leaves"] == ["removed", True] and views["stays"] == ["reading", True]


def test_views_tell_state_rate_and_tracks(files, backend, tmp_path: Path) -> None:
    engine = Engine([StreamSpec("cam", str(files["short"]), files["short_boxes"])], backend, settings=QUIET)
    with engine:
        before = engine.views()
        summary = engine.until_done()
        after = engine.views()
    assert (
        before[0].state == "reading"
        and before[0].frames == 0
        and before[0].since_frame_s >= 0
        and before[0].live is False
    )
    view = after[0]
    assert view.state == "ended" and view.frames == summary.frames == SHORT and view.fps > 0
    assert view.persons == 2 and {t.id for t in view.tracks} == {10, 11}
    for track in view.tracks:
        assert len(track.box) == 4 and abs(sum(track.weights) - 1) < 1e-3 and len(track.top) <= 3
        assert [score for _, score in track.top] == sorted((score for _, score in track.top), reverse=True)


def test_sighup_applies_an_edited_streams_file(files, tmp_path: Path) -> None:
    """`emoedge run --sources FILE`: SIGHUP re-reads it — a stream gone from the file stops, a new one starts, the
    unchanged one goes on untouched; a broken file is one warning and changes nothing."""
    cams = tmp_path / "cams.yaml"

    def write(*streams: str) -> None:
        lines = [f"  - {{id: {name}, source: {files[name]}, boxes: {files[f'{name}_boxes']}}}" for name in streams]
        cams.write_text("streams:\n" + "\n".join(lines) + "\n")

    write("long", "other")
    events = tmp_path / "e.jsonl"
    argv = emoedge_command("run", "--sources", str(cams), "--model", str(files["model"]), "--device", "cpu",
                           "--events", str(events), "--quiet")  # fmt: skip
    with Background(argv, tmp_path / "logs") as run:
        run.wait_until(lambda: count_lines(events) >= 20, "the first events")
        cams.write_text("streams: [not closed\n")
        run.send(signal.SIGHUP)
        run.wait_until(lambda: "SIGHUP:" in run.stderr, "the warning about the broken file")
        write("long", "short")  # other leaves, short joins, long stays
        run.send(signal.SIGHUP)
        run.wait_until(lambda: '"stream":"short"' in events.read_text(), "the added stream's events")
        run.interrupt(signal.SIGINT)
    assert run.returncode == 130, run.stderr
    assert "not valid YAML" in run.stderr and "the streams stay as they are" in run.stderr
    _, summary = read_events(events)
    outcomes = {s["id"]: s["outcome"] for s in summary["streams"]}
    assert outcomes["other"] == "removed" and outcomes["long"] in ("stopped", "ended") and "short" in outcomes
    frames = _by_stream(events)
    assert frames["long"] == list(range(len(frames["long"])))  # untouched: not restarted, no frame lost
