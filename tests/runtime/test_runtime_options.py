"""One engine for any number of streams: every `emoedge run` option is accepted with one source and with three, and
does the same per stream; options are generated from `RunSettings`, so a new field is a new, checked option."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from ports import free_port  # type: ignore[import-not-found]
from runtime.runtime_media import (  # type: ignore[import-not-found]
    read_events,
    video_frames,
    write_boxes_json,
    write_clip,
    write_tiny_checkpoint,
)

from emoedge import options
from emoedge.cli import build_parser, main
from emoedge.errors import EmoedgeError
from emoedge.runtime import settings as run_settings
from emoedge.settings import option

FRAMES = 6


def _ultralytics() -> bool:
    from emoedge.runtime.yolo import import_ultralytics

    try:
        import_ultralytics()
    except EmoedgeError:
        return False
    return True


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("matrix")
    files = {"model": write_tiny_checkpoint(folder / "tiny.pt")}
    for i in range(3):
        boxes = write_clip(folder / f"c{i}.mp4", frames=FRAMES + i, persons=2)
        files[f"clip{i}"] = folder / f"c{i}.mp4"
        files[f"boxes{i}"] = write_boxes_json(folder / f"b{i}.json", boxes, ids=i != 1)  # one stream is tracked
    return files


def _explain() -> tuple[str, ...]:
    pytest.importorskip("captum")
    return ("--explain-every", "4", "--explain-dir", "{out}/why")


# (option id, extra arguments ({out}: the case's folder), what to check in the outputs)
OPTIONS: list[tuple[str, tuple[str, ...] | None]] = [
    ("every", ("--every", "2")),
    ("smooth", ("--smooth", "0")),
    ("device", ("--device", "cpu")),
    ("precision", ("--precision", "bf16")),
    ("max-frames", ("--max-frames", "3")),
    ("quiet", ("--quiet",)),
    ("no-download", ("--no-download",)),
    ("connect-timeout-s", ("--connect-timeout-s", "1")),
    ("detect-every", ("--detect-every", "2")),
    ("overlap", ("--overlap", "on")),
    ("out", ("-o", "{out}/video")),
    ("publish", ("--publish", "mqtt://127.0.0.1:{port}/emo/{{stream}}", "--publish-queue", "100")),
    ("explain", None),  # filled in by the test (captum may be missing)
    ("override", ("every=3", "smooth=0.2")),
]


@pytest.mark.parametrize("streams", [1, 3])
@pytest.mark.parametrize(("name", "extra"), OPTIONS, ids=[name for name, _ in OPTIONS])
def test_every_run_option_works_with_one_source_and_with_three(
    media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, name: str, extra, streams: int
) -> None:
    extra = _explain() if extra is None else extra
    sources: list[str] = []
    for i in range(streams):
        sources += ["--source", str(media[f"clip{i}"]), "--boxes", str(media[f"boxes{i}"])]
    out = str(tmp_path)
    if name == "out" and streams == 1:
        extra = ("-o", "{out}/video.mp4")
    args = [a.format(out=out, port=free_port()) for a in extra]
    code = main(["run", "--model", str(media["model"]), *sources, "--events", f"{out}/e.jsonl", *args])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    persons, summary = read_events(tmp_path / "e.jsonl")
    ids = [s["id"] for s in summary["streams"]]
    assert ids == [f"cam{i}" for i in range(streams)] and {p["stream"] for p in persons} == set(ids)
    lengths = [min(FRAMES + i, 3 if name == "max-frames" else FRAMES + i) for i in range(streams)]
    assert [s["frames"] for s in summary["streams"]] == lengths
    assert summary["ticks"] == max(lengths) and summary["engine_calls"] <= summary["ticks"]
    if name == "every":
        assert summary["inferences"] < summary["events"]
    if name == "quiet":  # no progress or start-up lines; the summary is the result
        assert "persons: " not in printed.out and " frames in " in printed.out
    else:
        assert "persons: " in printed.out and all(f"  {i}: " in printed.out for i in ids)
    if name == "detect-every":
        assert summary["settings"]["detect_every"] == 2 and ("every 2 frames + ByteTrack" in summary["detector"]) == (
            streams > 1
        )  # the second stream's boxes have no ids: ByteTrack coasts between its detections
    if name == "overlap":
        assert summary["settings"]["overlap"] is True
    if name == "precision":  # without it, the checkpoint runs as trained, as `eval` runs it
        assert ", bf16 (precision requested" in summary["backend"]
    if name == "out":
        videos = [Path(s["video"]) for s in summary["streams"]]
        assert [video_frames(v)[0] for v in videos] == lengths
        if streams > 1:
            assert videos == [tmp_path / "video" / f"cam{i}.mp4" for i in range(streams)]
    if name == "publish":
        assert summary["undelivered"] == summary["events"] > 0  # no broker there: every event counted, none lost
    if name == "explain":
        folders = sorted(p.name for p in (tmp_path / "why").iterdir())
        assert folders == ids and summary["explanations"] == sum(s["explanations"] for s in summary["streams"]) > 0
    if name == "override":
        assert summary["settings"]["every"] == 3 and summary["settings"]["smooth"] == 0.2


@pytest.mark.parametrize("streams", [1, 3])
def test_show_is_refused_only_for_a_missing_display_never_for_a_stream_count(media, capsys, streams: int) -> None:
    """Every stream gets its own window; where OpenCV has no GUI (the headless build here) the one line says so."""
    import cv2

    sources = []
    for i in range(streams):
        sources += ["--source", str(media[f"clip{i}"]), "--boxes", str(media[f"boxes{i}"])]
    code = main(["run", "--model", str(media["model"]), *sources, "--show", "--quiet"])
    err = capsys.readouterr().err
    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        gui = True
    except cv2.error:
        gui = False
    assert code == (0 if gui else 2), err
    assert gui or "--show needs OpenCV with GUI support and a display" in err


@pytest.mark.parametrize("streams", [1, 3])
def test_the_detector_serves_one_source_or_three_in_one_batched_call(media, tmp_path, capsys, streams) -> None:
    if not _ultralytics():
        pytest.skip("Ultralytics is not installed")
    sources = [a for i in range(streams) for a in ("--source", str(media[f"clip{i}"]))]
    argv = ["run", "--model", str(media["model"]), *sources, "--detector", "yolo11n.yaml", "--detect-size", "96",
            "--detect-every", "2", "--events", str(tmp_path / "e.jsonl"), "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    _, summary = read_events(tmp_path / "e.jsonl")
    assert summary["detector"] == "YOLO yolo11n.yaml at 96 px, every 2 frames + ByteTrack"
    assert summary["stages"]["detect"]["count"] == summary["ticks"] == FRAMES + streams - 1


def test_a_new_settings_field_is_a_new_checked_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """No other edit: the option appears in `emoedge run --help` with its help and range, and its values (by option
    or by key=value) are checked by the settings mechanism."""
    extended = dataclasses.make_dataclass(
        "RunSettings",
        [("glow", float, option(0.25, "how much the labels glow", low=0, high=1))],
        bases=(run_settings.RunSettings,),
        frozen=True,
    )
    monkeypatch.setattr(run_settings, "RunSettings", extended)
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    text = run.format_help()
    assert "--glow GLOW" in text and "how much the labels glow (a number from 0 to 1)" in text
    assert "default: 0.25" in text and "glow" in text.split("override run settings (")[1].split(")")[0]

    args = parser.parse_args(["run", "--source", "c.mp4", "--model", "m.onnx", "--glow", "0.5"])
    assert options.from_args(extended, args, [], "run settings").glow == 0.5
    assert options.from_args(extended, args, ["glow=0.75"], "run settings").glow == 0.75
    for given, overrides in ((["--glow", "2"], []), ([], ["glow=-1"])):
        args = parser.parse_args(["run", "--source", "c.mp4", "--model", "m.onnx", *given])
        with pytest.raises(EmoedgeError, match=r"run settings: glow (2\.0|-1\.0): expected a number from 0 to 1"):
            options.from_args(extended, args, overrides, "run settings")
    with pytest.raises(EmoedgeError, match=r"glow 7\.0: expected a number from 0 to 1"):
        extended(glow=7.0)  # built in Python: the same check


def test_run_settings_declare_every_option_they_generate() -> None:
    """Each field has its help text; the generated flags are the documented spellings."""
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    flags = {flag for action in run._actions for flag in action.option_strings}
    for field in dataclasses.fields(run_settings.RunSettings):
        assert field.metadata.get("help"), field.name
    expected = {"--every", "--smooth", "--device", "--max-frames", "--show", "--quiet", "--no-download",
                "--connect-timeout-s", "--explain-every", "--detect-every", "--detect-size", "--overlap", "--publish-queue",
                "--precision", "--model-timeout-s"}  # fmt: skip
    assert expected <= flags
