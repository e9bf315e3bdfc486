"""Every command of `python -m emoedge`, run as a user would on tiny inputs (after Ultralytics' tests/test_cli.py).

Expensive artifacts are made once per module (one training run, one ONNX export) and shared. Each test checks what
the command produced — files with the expected content, exit status, the key lines of its output — not only that
it ran.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cli_helpers import (  # type: ignore[import-not-found]
    Background,
    assert_one_line_error,
    count_lines,
    emoedge_command,
    run_cli,
    run_cli_many,
)
from PIL import Image
from runtime.runtime_media import read_events, video_frames  # type: ignore[import-not-found]

from emoedge import __version__
from emoedge.bench.clip import write_boxes_json, write_clip
from emoedge.cli import build_parser
from emoedge.data.emotic import load_split
from emoedge.fileio import safe_torch_load
from emoedge.formats.checkpoint import read_checkpoint
from emoedge.formats.onnx import card_of, graph_precision, int8_target
from emoedge.formats.tensorrt import INSTALL_HINT
from emoedge.model.backbones import create_backbone
from emoedge.runtime.clip import make_demo_clip


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


# ------------------------------------------------------------------------------------------------ the help texts
def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the command line with its command path: (), ("sample",), ("export", "onnx"), ..."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


PARSERS = dict(_parsers(build_parser()))


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """`python -m emoedge [COMMAND ...] --help` of every (sub)command, run a few at a time."""
    return dict(zip(PARSERS, run_cli_many([[*path, "--help"] for path in PARSERS])))


def test_version():
    proc = _ok(run_cli("--version"))
    assert proc.stdout.strip() == f"emoedge {__version__}"


def test_every_command_is_covered():
    # A new command must be added here, and to the tests below, on purpose.
    assert {" ".join(path) for path in PARSERS} == {
        "", "sample", "data", "data check", "train", "eval", "explain", "pretrain", "export", "export onnx",
        "export precision", "export engine", "export openvino", "export triton", "run", "serve", "bench", "demo",
    }  # fmt: skip


@pytest.mark.parametrize("path", PARSERS, ids=lambda path: " ".join(path) or "emoedge")
def test_help_shows_defaults_choices_and_examples(path, helps):
    proc = _ok(helps[path])
    text = " ".join(proc.stdout.split())  # argparse wraps lines where it likes
    assert text.startswith(f"usage: {' '.join(('emoedge', *path))} ")
    examples = proc.stdout.split("\nexamples:\n", 1)[1].splitlines()
    assert examples and all(re.match(r"  (emoedge|torchrun) ", line) for line in examples), examples
    parser = PARSERS[path]
    for action in parser._actions:
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            assert "{" + ",".join(map(str, action.choices)) + "}" in text, action.dest
        shown = action.default not in (None, [], argparse.SUPPRESS) and action.nargs != 0
        if shown:
            assert f"(default: {action.default})" in text, action.dest


@pytest.mark.parametrize("path", PARSERS, ids=lambda path: " ".join(path) or "emoedge")
def test_every_argument_and_subcommand_has_help_text(path):
    for action in PARSERS[path]._actions:
        if isinstance(action, argparse._SubParsersAction):
            assert all(choice.help for choice in action._choices_actions), path
        else:
            assert action.help and action.help != argparse.SUPPRESS, (path, action.dest)


def test_what_a_command_writes_is_always_o_out():
    # One spelling per concept: every command that writes a file or folder (other than a positional DIR) takes -o/--out.
    writers = {
        " ".join(path)
        for path, parser in PARSERS.items()
        for action in parser._actions
        if action.option_strings == ["-o", "--out"]
    }
    assert writers == {
        "train", "eval", "explain", "pretrain", "export onnx", "export precision", "export engine", "export openvino",
        "export triton", "run", "bench",
    }  # fmt: skip
    assert not [a for p in PARSERS.values() for a in p._actions if "--output" in a.option_strings]


# ------------------------------------------------------------------------------------------- data, train, eval
def test_sample_writes_the_same_dataset_as_the_library(sample_root, tmp_path):
    proc = _ok(run_cli("sample", str(tmp_path / "data")))
    assert f"sample dataset written to {tmp_path / 'data'}" in proc.stdout
    ours = sorted(p.relative_to(sample_root) for p in sample_root.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(tmp_path / "data") for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert theirs == ours and Path("Annotations/Annotations.mat") in theirs
    for rel in ours:  # seed 0 both times: the same images and CSVs (the .mat carries its creation time)
        if rel.suffix != ".mat":
            assert (tmp_path / "data" / rel).read_bytes() == (sample_root / rel).read_bytes(), rel


def test_data_check_counts_every_split(sample_root):
    proc = _ok(run_cli("data", "check", str(sample_root)))
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line.split()}
    for split in ("train", "val", "test"):
        data = load_split(sample_root, split)
        images = len({r.filename for r in data.records})
        assert rows[split][:3] == [str(images), str(len(data.records)), str(data.skipped)], (split, rows[split])
    assert proc.stdout.rstrip().endswith("no problems found")


@pytest.fixture(scope="module")
def trained(sample_root, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`emoedge train sample` for one epoch, shared by the eval, export and run tests."""
    out = tmp_path_factory.mktemp("train") / "run"
    proc = run_cli(
        "train", "sample", "--data", str(sample_root), "-o", str(out), "--quiet", "optim.epochs=1", "data.workers=0"
    )
    return _ok(proc), out


def test_train_takes_overrides_after_options_and_writes_checkpoints(trained):
    proc, out = trained
    assert re.search(rf"best val mAP \d+\.\d\d — checkpoints: {out / 'best.pt'} \(best\)", proc.stdout)
    saved = read_checkpoint(out / "last.pt")
    assert saved["epoch"] == 0 and len(saved["history"]) == 1
    assert saved["recipe"]["optim"]["epochs"] == 1 and saved["recipe"]["data"]["workers"] == 0
    assert (out / "best.pt").is_file() and (out / "metrics.csv").read_text().count("\n") == 2


def test_eval_writes_the_report_it_prints(trained, sample_root, tmp_path):
    _, run = trained
    proc = _ok(
        run_cli(
            "eval", str(run / "best.pt"), "--data", str(sample_root), "-o", str(tmp_path), "--workers", "0", "--quiet"
        )
    )
    results = json.loads((tmp_path / "results.json").read_text())
    printed = re.search(r"^test mAP (\d+\.\d\d) — report: ", proc.stdout, re.M)
    assert printed and float(printed.group(1)) == pytest.approx(100 * results["mAP"], abs=0.005)
    assert results["split"] == "test" and results["model"] == "sample"
    assert results["extra"]["persons"] == len(load_split(sample_root, "test").records)
    assert {p.name for p in tmp_path.iterdir()} == {
        "results.json",
        "table1.md",
        "ap_per_category.png",
        "modality_weights.png",
        "gallery",  # a checkpoint's report explains 8 test persons (paper Fig. 1)
    }
    assert len(list((tmp_path / "gallery").glob("*.png"))) == 8
    assert "| **mAP** | 27.38 |" in proc.stdout  # the paper's reference columns, printed as in Table 1


# ----------------------------------------------------------------------------------------------------- explain
def test_explain_draws_a_dataset_person_and_an_image_person(trained, sample_root, tmp_path):
    pytest.importorskip("captum")
    _, run = trained
    record = load_split(sample_root, "test").records[0]
    box = ",".join(str(v) for v in record.bbox)
    image = sample_root / "emotic" / record.folder / record.filename
    annotated, file = run_cli_many([
        ("explain", str(run / "best.pt"), "--data", str(sample_root), "--index", "2", "-o", str(tmp_path / "a.png")),
        ("explain", str(run / "best.pt"), "--image", str(image), "--box", box, "--category", "Peace",
         "-o", str(tmp_path / "b.png")),
    ])  # fmt: skip
    for proc, name in ((annotated, "a.png"), (file, "b.png")):
        assert _ok(proc).stdout.strip() == f"explanation: {tmp_path / name}"
        width, height = Image.open(tmp_path / name).size
        assert width > 1000 and height > 600  # four panels side by side, legible
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


EXPLAIN_BAD = {
    "image-without-box": (("--image", "x.jpg"), "--image needs --box x1,y1,x2,y2"),
    "data-without-index": (("--data", "d"), "--data needs --index I"),
    "both": (("--image", "x.jpg", "--data", "d"), "argument --data: not allowed with argument --image"),
    "onnx": (("--image", "x.jpg", "--box", "1,2,3,4"), "explanations need the checkpoint (.pt)"),
}


@pytest.mark.parametrize("case", EXPLAIN_BAD)
def test_explain_requests_it_cannot_serve_are_one_line(case, tmp_path):
    model = "model.onnx" if case == "onnx" else "best.pt"
    args, needle = EXPLAIN_BAD[case]
    assert_one_line_error(run_cli("explain", model, *args, "-o", str(tmp_path / "x.png")), needle)


# ---------------------------------------------------------------------------------------------------- pretrain
def _image_folder(root: Path) -> Path:
    """2 classes x 4 PNGs of 32x32: a red and a blue class."""
    for name, rgb in {"red": (220, 30, 30), "blue": (20, 40, 220)}.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((32, 32, 3), rgb, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_pretrain_options_and_overrides_reach_the_backbone(tmp_path):
    out = tmp_path / "scene_tiny.pt"
    proc = run_cli(
        "pretrain", "--branch", "scene", "--data", str(_image_folder(tmp_path / "images")), "-o", str(out),
        "--arch", "tiny", "--epochs", "3", "--image-size", "32", "--batch-size", "4", "epochs=1", "workers=0",
    )  # fmt: skip
    assert f"scene backbone (tiny) written to {out}; use it with model.weights.scene={out}" in _ok(proc).stdout
    assert "epoch 1/1:" in proc.stdout and "epoch 2/" not in proc.stdout  # epochs=1 won over --epochs 3
    saved = safe_torch_load(out)
    assert (saved["arch"], saved["branch"], saved["classes"], saved["epochs"]) == ("tiny", "scene", ["blue", "red"], 1)
    assert saved["image_size"] == 32
    backbone, _ = create_backbone("tiny", str(out))
    assert all(torch.equal(v, saved["state_dict"][k]) for k, v in backbone.state_dict().items())


# ------------------------------------------------------------------------------------------------------ export
@pytest.fixture(scope="module")
def onnx_model(trained) -> tuple[subprocess.CompletedProcess, Path]:
    _, run = trained
    out = run.parent / "model.onnx"
    return _ok(run_cli("export", "onnx", str(run / "best.pt"), "-o", str(out))), out


def test_export_onnx_writes_a_self_describing_graph(onnx_model):
    proc, path = onnx_model
    assert re.search(r"^parity: max \|Δscore\| = \S+ over F×N = 1x1 1x3 2x3", proc.stdout, re.M)
    assert proc.stdout.rstrip().endswith(f"ONNX model written to {path}")
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image", "body", "frame"]
    assert card_of(model, path).name == "sample" and graph_precision(model) == "fp32"


def test_export_precision_fp16_is_named_beside_its_input(onnx_model):
    _, fp32 = onnx_model
    proc = _ok(run_cli("export", "precision", str(fp32), "--fp16"))
    out = fp32.with_name("model-fp16.onnx")  # the default name
    assert proc.stdout.rstrip().endswith(f"FP16 ONNX written to {out}") and "parity vs FP32" in proc.stdout
    model = onnx.load(str(out))
    assert graph_precision(model) == "fp16" and card_of(model, out).name == "sample"


def test_export_precision_int8_for_cpus_calibrates_on_a_folder(onnx_model, sample_root, tmp_path):
    _, fp32 = onnx_model
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in sorted(sample_root.rglob("*.jpg"))[:8]:
        shutil.copy(image, calib)
    out = tmp_path / "int8.onnx"
    cmd = ("export", "precision", str(fp32), "--int8", "--int8-target", "cpu", "--calib", str(calib), "-o", str(out))
    proc = _ok(run_cli(*cmd))
    assert "8 calibration frames" in proc.stdout and f"INT8-CPU ONNX written to {out}" in proc.stdout
    model = onnx.load(str(out))
    assert graph_precision(model) == "int8" and int8_target(model) == "cpu"


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed")
def test_export_openvino_writes_an_ir_folder_beside_its_input_that_eval_reads(onnx_model, sample_root):
    _, fp32 = onnx_model
    proc = _ok(run_cli("export", "openvino", str(fp32), "--half"))
    out = fp32.with_name("model-openvino-fp16")  # the default name
    assert proc.stdout.rstrip().endswith(f"OpenVINO FP16 IR written to {out} (model.xml + model.bin)")
    assert "parity vs the source ONNX" in proc.stdout and {p.name for p in out.iterdir()} == {"model.xml", "model.bin"}
    report = out.parent / "eval-openvino"
    proc = _ok(run_cli("eval", str(out), "--data", str(sample_root), "-o", str(report), "--workers", "0", "--quiet"))
    assert f"model: {out} (OpenVINO" in proc.stdout and (report / "results.json").is_file()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_export_engine_without_tensorrt_says_how_to_install_it(onnx_model, tmp_path):
    # Real engine builds are tested in tests/export/test_export_tensorrt.py, where tensorrt imports; here the command
    # reads the target and its overrides, then stops at TensorRT with the one-line install hint.
    _, path = onnx_model
    proc = run_cli(
        "export", "engine", str(path), "--target", "desktop-gpu", "persons.max=8", "-o", str(tmp_path / "m.engine")
    )
    assert_one_line_error(proc, INSTALL_HINT)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------------- run
@pytest.fixture(scope="module")
def clip(sample_root, tmp_path_factory) -> tuple[Path, Path]:
    """12 frames of 320x240 panning over 3 sample images, and the boxes of their persons."""
    return make_demo_clip(sample_root, tmp_path_factory.mktemp("clip"), images=3, frames_per_image=4, size=(320, 240))


def test_run_options_and_overrides_are_the_same_settings(onnx_model, clip, tmp_path):
    _, model = onnx_model
    video, boxes = clip
    base = ("run", "--source", str(video), "--model", str(model), "--boxes", str(boxes), "--device", "cpu")
    by_options, by_overrides = run_cli_many([
        (*base, "-o", str(tmp_path / "a.mp4"), "--events", str(tmp_path / "a.jsonl"), "--every", "2", "--smooth", "0"),
        (*base, "--events", str(tmp_path / "b.jsonl"), "every=2", "smooth=0", "--quiet"),
    ])  # fmt: skip
    assert re.search(
        r"^12 frames in .* FPS; \d+ person events, \d+ inferred in \d+ engine calls over 12 ticks$",
        _ok(by_options).stdout,
        re.M,
    )
    quiet = _ok(by_overrides).stdout  # --quiet: no progress, start-up lines or bars; the summary, its result
    assert quiet.startswith("12 frames in ") and "persons: " not in quiet and "model: " not in quiet
    assert video_frames(tmp_path / "a.mp4") == (12, (320, 240))

    a, summary = read_events(tmp_path / "a.jsonl")
    b, _ = read_events(tmp_path / "b.jsonl")
    expected = sum(len(f["boxes"]) for f in json.loads(boxes.read_text())["frames"])
    assert summary["frames"] == 12 and len(a) == summary["events"] == expected
    assert 0 < summary["inferences"] < expected  # every=2: a track's result is reused on the frame between
    assert [(e["frame"], e["track_id"], e["inferred"], e["scores"]) for e in a] == [
        (e["frame"], e["track_id"], e["inferred"], e["scores"]) for e in b
    ]


def test_run_takes_several_sources_by_option_or_file(onnx_model, tmp_path):
    _, model = onnx_model
    for i in range(2):
        write_boxes_json(tmp_path / f"b{i}.json", write_clip(tmp_path / f"c{i}.mp4", frames=6 + 2 * i, persons=2))
    (tmp_path / "cams.yaml").write_text(
        "streams:\n  - {id: hall, source: c0.mp4, boxes: b0.json, out: v/hall.mp4}\n"
        "  - {id: yard, source: c1.mp4, boxes: b1.json}\n"
    )
    by_options, by_file = run_cli_many([
        ("run", "--model", str(model), "--source", str(tmp_path / "c0.mp4"), "--source", str(tmp_path / "c1.mp4"),
         "--boxes", str(tmp_path / "b0.json"), "--boxes", str(tmp_path / "b1.json"), "-o", str(tmp_path / "out"),
         "--events", str(tmp_path / "a.jsonl"), "--device", "cpu"),
        ("run", "--model", str(model), "--sources", str(tmp_path / "cams.yaml"), "--events", str(tmp_path / "b.jsonl"),
         "--device", "cpu", "--quiet"),
    ])  # fmt: skip
    assert re.search(
        r"^2 streams: 14 frames in .* FPS in total; 28 person events, .* over 8 ticks", _ok(by_options).stdout, re.M
    )
    assert "  cam0: 6 frames" in by_options.stdout and "  cam1: 8 frames" in by_options.stdout
    assert [video_frames(tmp_path / "out" / f"cam{i}.mp4")[0] for i in range(2)] == [6, 8]
    assert _ok(by_file).stdout.startswith("2 streams: 14 frames in ")  # --quiet: the summary, no start-up lines
    assert video_frames(tmp_path / "v" / "hall.mp4")[0] == 6
    a, summary = read_events(tmp_path / "a.jsonl")
    b, _ = read_events(tmp_path / "b.jsonl")
    assert summary["engine_calls"] == summary["ticks"] == 8
    assert [(e["frame"], e["track_id"], e["scores"]) for e in a] == [
        (e["frame"], e["track_id"], e["scores"]) for e in b
    ]
    assert {e["stream"] for e in a} == {"cam0", "cam1"} and {e["stream"] for e in b} == {"hall", "yard"}


def test_run_explains_every_kth_frame_of_a_checkpoint(trained, clip, tmp_path):
    pytest.importorskip("captum")
    _, run = trained
    video, boxes = clip
    proc = _ok(run_cli(
        "run", "--source", str(video), "--model", str(run / "best.pt"), "--boxes", str(boxes), "--device", "cpu",
        "--events", str(tmp_path / "ev.jsonl"), "--explain-every", "5", "--explain-dir", str(tmp_path / "why"),
    ))  # fmt: skip
    persons = {f["index"]: len(f["boxes"]) for f in json.loads(boxes.read_text())["frames"]}
    assert [p.name for p in (tmp_path / "why").iterdir()] == ["cam0"]  # DIR/<stream>/, one stream or several
    written = {p.name for p in (tmp_path / "why" / "cam0").iterdir()}
    events, summary = read_events(tmp_path / "ev.jsonl")
    tracks = {(e["frame"], e["track_id"]) for e in events if e["frame"] in (0, 5, 10)}  # frames 0, K, 2K of 12
    assert written == {f"frame{i:06d}-track{t}.png" for i, t in tracks}
    assert len(written) == sum(persons.get(i, 0) for i in (0, 5, 10)) > 0
    assert summary["explanations"] == len(written) and f"{len(written)} explanations" in proc.stdout
    assert Image.open(tmp_path / "why" / "cam0" / sorted(written)[0]).size[0] > 1000


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--explain-every", "5"), "--explain-every K and --explain-dir DIR go together"),
        (("--explain-dir", "why"), "--explain-every K and --explain-dir DIR go together"),
        (("--explain-every", "-1", "--explain-dir", "why"), "explain_every -1: expected an integer >= 0"),
        (("--explain-every", "5", "--explain-dir", "why"), "--explain-every: explanations need the checkpoint (.pt)"),
    ],
)
def test_run_explanations_it_cannot_serve_are_one_line(onnx_model, clip, extra, needle, tmp_path):
    _, model = onnx_model
    video, boxes = clip
    proc = run_cli("run", "--source", str(video), "--model", str(model), "--boxes", str(boxes), *extra, cwd=tmp_path)
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "why").exists()  # refused before anything was written


def test_interrupted_run_exits_130_with_its_outputs_complete(onnx_model, tmp_path):
    _, model = onnx_model
    write_boxes_json(tmp_path / "boxes.json", write_clip(tmp_path / "long.mp4", frames=1500, persons=2))
    events = tmp_path / "ev.jsonl"
    cmd = emoedge_command("run", "--source", str(tmp_path / "long.mp4"), "--model", str(model),
                          "--boxes", str(tmp_path / "boxes.json"), "--events", str(events), "--quiet")  # fmt: skip
    with Background(cmd, tmp_path / "logs") as proc:
        proc.wait_until(lambda: count_lines(events) >= 10, "10 events")
        proc.interrupt(signal.SIGINT)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == "emoedge: interrupted"
    persons, summary = read_events(events)  # every line whole, the summary last
    assert summary["interrupted"] and 5 <= summary["frames"] < 1500 and len(persons) == 2 * summary["frames"]


# -------------------------------------------------------------------------------------------------------- demo
def test_demo_runs_the_whole_job_and_then_skips_what_is_done(tmp_path):
    first = _ok(run_cli("demo", str(tmp_path), "--epochs", "1"))
    for step in range(1, 6):
        assert f"[{step}/5]" in first.stdout
    assert re.search(r"^test mAP \d+\.\d\d — report, plots and JSON in ", first.stdout, re.M)
    assert f"annotated video: {tmp_path / 'tagged.mp4'}" in first.stdout
    frames, _ = video_frames(tmp_path / "tagged.mp4")
    _, summary = read_events(tmp_path / "events.jsonl")
    assert frames == summary["frames"] > 0 and summary["events"] > 0
    assert json.loads((tmp_path / "report" / "results.json").read_text())["model"] == "sample"

    again = _ok(run_cli("demo", str(tmp_path), "--epochs", "1"))
    assert "[1/5] sample dataset already in" in again.stdout and "is up to date" in again.stdout


# ----------------------------------------------------------------------------------------------- bad arguments
RUN = ("run", "--source", "clip.mp4", "--model", "model.onnx")
PRETRAIN = ("pretrain", "--branch", "place", "--data", "images", "-o", "out.pt")
BAD = {
    "run-unknown-key": ((*RUN, "evry=2"), "run settings: evry: unknown key (did you mean 'every'?)"),
    "run-bad-value": ((*RUN, "smooth=1.5"), "run settings: smooth 1.5: expected a number in [0, 1)"),
    "run-bad-type": ((*RUN, "--every", "2", "every=often"), "run settings: every: expected int, got 'often'"),
    "pretrain-unknown-key": ((*PRETRAIN, "epoch=3"), "pretrain settings: epoch: unknown key (did you mean 'epochs'?)"),
    "pretrain-bad-option": ((*PRETRAIN, "--lr", "0"), "pretrain settings: lr 0.0: expected a finite number > 0"),
    "engine-unknown-key": (
        ("export", "engine", "m.onnx", "--target", "desktop-gpu", "persons.mx=8"),
        "persons.mx: unknown key (did you mean 'max'?)",
    ),
    "engine-unknown-target": (
        ("export", "engine", "m.onnx", "--target", "nowhere"),
        "target nowhere: no such file here and no shipped target of that name (known: desktop-gpu",
    ),
    "train-unknown-key": (("train", "sample", "optim.epoch=1"), "optim.epoch: unknown key (did you mean 'epochs'?)"),
    "eval-takes-no-overrides": (("eval", "best.pt", "--data", "d", "split=val"), "unrecognized arguments: split=val"),
    "missing-option": (("run", "--model", "m.onnx"), "the following arguments are required: --source"),
    "bad-detect-every": ((*RUN, "--detect-every", "0"), "run settings: detect_every 0: expected an integer >= 1"),
    "bad-detect-size": ((*RUN, "detect_size=8"), "run settings: detect_size 8: expected an integer from 32 to 4096"),
    "sources-and-source": ((*RUN, "--sources", "s.yaml"), "--sources FILE names every stream's source"),
    "boxes-beyond-sources": ((*RUN, "--boxes", "a.json", "--boxes", "b.json"), "--boxes given 2 times for 1 source"),
    "detector-and-boxes": ((*RUN, "--boxes", "a.json", "--detector", "y.pt"), "give either a detector"),
    "mp4-for-streams": ((*RUN, "--source", "b.mp4", "-o", "x.mp4"), "--out x.mp4: with 2 sources, expected a folder"),
    "bad-choice": (("eval", "best.pt", "--data", "d", "--split", "tst"), "argument --split: invalid choice: 'tst'"),
    "no-command": ((), "the following arguments are required: COMMAND (see `emoedge --help`)"),
    # a URL's password never reaches the terminal, whichever message carries it
    "url-as-override": ((*RUN, "rtsp://u:s3cret@cam/x"), "override 'rtsp://***@cam/x': expected key=value"),
    "url-in-usage-error": ((*RUN, "--src=rtsp://u:pa?s3#cret@cam/x"), "unrecognized arguments: --src=rtsp://***@cam/x"),
}


@pytest.fixture(scope="module")
def bad_runs() -> dict[str, subprocess.CompletedProcess]:
    return dict(zip(BAD, run_cli_many([argv for argv, _ in BAD.values()])))


@pytest.mark.parametrize("case", BAD)
def test_bad_arguments_are_one_line_errors(case, bad_runs):
    assert_one_line_error(bad_runs[case], BAD[case][1])
    if case.startswith("url"):
        assert "s3" not in bad_runs[case].stderr  # no part of the password


def test_a_signal_interrupts_but_never_inside_the_clean_up_it_started():
    """The command line's signal rule: a signal raises KeyboardInterrupt, except while one is being handled (the
    clean-up is not cut short) and once the command is over (it only counts, for the exit status)."""
    from emoedge.signals import Signals

    def signal_self(signum: int) -> None:
        os.kill(os.getpid(), signum)
        time.sleep(0.01)  # the handler runs at the next bytecode

    signals = Signals().install()
    try:
        with pytest.raises(KeyboardInterrupt):
            signal_self(signal.SIGTERM)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            signal_self(signal.SIGINT)  # a second Ctrl-C during the clean-up: counted only
        with pytest.raises(KeyboardInterrupt):
            signal_self(signal.SIGINT)  # the clean-up is over: the next one interrupts again
        signals.settle()
        signal_self(signal.SIGTERM)
    finally:
        signals.restore()
    assert signals.received == 4


def test_main_in_process_gives_the_signal_handlers_back(tmp_path, capsys):
    """`main([...])` (an in-process caller) takes SIGINT and SIGTERM only while its command runs."""
    from emoedge.cli import main

    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert main(["run", "--source", str(tmp_path / "none.mp4"), "--model", "m.onnx", "--boxes", "b.json"]) == 2
    assert "video file not found" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
