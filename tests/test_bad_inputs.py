"""Every command, given bad input, exits 2 with exactly one line on stderr that names the file, field or value and
what was expected, and never prints a traceback (`assert_one_line_error`).

One table: data, recipes and overrides, checkpoints, ONNX and engine files, sources, boxes files, output paths and
numeric options. The inputs are made once per module; the commands run as a user runs them (`python -m emoedge`),
a few at a time, since each start-up spends seconds importing torch.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli_many  # type: ignore[import-not-found]

from emoedge import resources
from emoedge.bench.models import random_checkpoint
from emoedge.export.onnx import export_onnx
from emoedge.formats.onnx import CARD_KEY, FORMAT, FORMAT_KEY

# (id, argv with {placeholders} for the files made below, words the one line must contain)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # --- the command line itself
    ("unknown-command", "frobnicate", ("invalid choice", "frobnicate")),
    ("train-unknown-recipe", "train no-such-recipe --data {data}", ("no-such-recipe", "known: ", "paper")),
    ("train-misspelt-recipe", "train papr --data {data}", ("recipe papr", "did you mean 'paper'?")),
    (
        "engine-misspelt-target",
        "export engine {onnx} --target jetson-orn",
        ("jetson-orn", "did you mean 'jetson-orin'"),
    ),
    ("export-onnx-named-pt", "export onnx {ckpt} -o {tmp}/exported.pt", ("exported.pt", "ending in .onnx")),
    ("precision-named-pt", "export precision --fp16 {onnx} -o {tmp}/fp16.pt", ("fp16.pt", ".onnx")),
    (
        "run-video-named-onnx",
        "run --source {clip} --model {onnx} --boxes {boxes} -o {tmp}/tagged.onnx",
        ("tagged.onnx", ".mp4"),
    ),
    (
        "run-boxes-for-one-of-two",
        "run --source {clip} --source {clip} --model {onnx} --boxes {boxes} --no-download",
        ("stream(s) cam1 have no boxes file", "one per source"),
    ),
    ("eval-bad-split", "eval {ckpt} --data {data} --split dev", ("--split", "dev")),
    ("run-missing-model", "run --source {clip}", ("--model",)),
    ("export-precision-no-kind", "export precision {onnx}", ("--fp16", "--int8")),
    # --- data
    ("data-missing-root", "data check {tmp}/nowhere", ("nowhere",)),
    ("data-empty-root", "data check {empty}", ("Annotations.mat",)),
    ("data-nan-box", "data check {data_nan} --format csv", ("nan",)),
    ("data-swapped-box", "data check {data_swapped} --format csv", ("x2",)),
    ("data-outside-box", "data check {data_outside} --format csv", ("outside",)),
    ("data-text-as-jpg", "data check {data_textjpg}", ("emoedge_train_0000.jpg",)),
    ("data-missing-image", "data check {data_noimage}", ("emoedge_train_0000.jpg",)),
    ("data-bad-csv-header", "data check {data_badcsv} --format csv", ("train.csv",)),
    # --- recipes and overrides
    ("recipe-unknown-key", "train {recipe_unknown} --data {data}", ("optim.learning_rate", "unknown key")),
    ("recipe-wrong-type", "train {recipe_type} --data {data}", ("optim.epochs", "expected int")),
    ("recipe-bad-yaml", "train {recipe_yaml} --data {data}", ("bad.yaml",)),
    ("recipe-not-mapping", "train {recipe_list} --data {data}", ("list.yaml", "mapping")),
    ("recipe-missing-base", "train {recipe_base} --data {data}", ("nowhere.yaml",)),
    ("override-negative-lr", "train sample --data {data} -o {tmp}/r1 optim.lr=-0.1", ("optim.lr", "-0.1")),
    ("override-nan-lr", "train sample --data {data} -o {tmp}/r2 optim.lr=.nan", ("optim.lr", "nan")),
    ("override-inf-lr", "train sample --data {data} -o {tmp}/r3 optim.lr=.inf", ("optim.lr", "inf")),
    ("override-negative-workers", "train sample --data {data} -o {tmp}/r4 data.workers=-1", ("data.workers", "-1")),
    ("override-zero-epochs", "train sample --data {data} -o {tmp}/r5 optim.epochs=0", ("optim.epochs", "0")),
    ("override-zero-batch", "train sample --data {data} -o {tmp}/r6 optim.batch_size=0", ("optim.batch_size", "0")),
    ("override-unknown-key", "train sample --data {data} -o {tmp}/r7 optim.lrr=0.1", ("optim.lrr", "optim.lr")),
    ("override-no-value", "train sample --data {data} -o {tmp}/r8 optim.lr=", ("optim.lr",)),
    ("override-bad-choice", "train sample --data {data} -o {tmp}/r9 data.format=xml", ("data.format", "xml")),
    ("run-override-unknown", "run --source {clip} --model {onnx} --boxes {boxes} evry=2", ("evry", "every")),
    ("run-override-bad", "run --source {clip} --model {onnx} --boxes {boxes} smooth=2", ("smooth", "[0, 1)")),
    # --- checkpoints
    ("ckpt-missing", "eval {tmp}/none.pt --data {data}", ("none.pt", "not found")),
    ("ckpt-text", "eval {text_pt} --data {data}", ("text.pt", "not a torch file")),
    ("ckpt-random", "eval {random_pt} --data {data}", ("random.pt", "not a torch file")),
    ("ckpt-truncated", "eval {half_pt} --data {data}", ("half.pt", "truncated or corrupt")),
    ("ckpt-pickled-object", "eval {evil_pt} --data {data}", ("evil.pt", "pickled Python objects")),
    ("ckpt-foreign", "eval {foreign_pt} --data {data}", ("foreign.pt", "not an emoedge training checkpoint")),
    ("ckpt-bad-card", "eval {badcard_pt} --data {data}", ("badcard.pt", "model card")),
    ("export-onnx-text-ckpt", "export onnx {text_pt} -o {tmp}/x.onnx", ("text.pt", "not a torch file")),
    ("run-ckpt-random", "run --source {clip} --model {random_pt} --boxes {boxes}", ("random.pt",)),
    # --- ONNX and engine files
    ("onnx-random", "eval {random_onnx} --data {data}", ("random.onnx",)),
    ("onnx-foreign", "run --source {clip} --model {foreign_onnx} --boxes {boxes}", ("foreign.onnx", "emoedge")),
    ("onnx-bad-card", "eval {badcard_onnx} --data {data}", ("badcard.onnx", "model card")),
    ("precision-foreign-onnx", "export precision --fp16 {foreign_onnx}", ("foreign.onnx",)),
    ("engine-build-foreign-onnx", "export engine {foreign_onnx} --target desktop-gpu", ("foreign.onnx",)),
    ("engine-unknown-target", "export engine {onnx} --target moon-gpu", ("moon-gpu",)),
    ("engine-bad-target-key", "export engine {onnx} --target desktop-gpu persons.maxx=4", ("persons.maxx",)),
    ("engine-without-tensorrt", "eval {engine} --data {data}", ("x.engine", "TensorRT is not installed")),
    ("onnx-truncated", "run --source {clip} --model {half_onnx} --boxes {boxes}", ("half.onnx",)),
    ("model-unknown-suffix", "run --source {clip} --model {tmp}/model.h5 --boxes {boxes}", ("model.h5",)),
    # --- sources
    ("source-missing-file", "run --source {tmp}/none.mp4 --model {onnx} --boxes {boxes}", ("none.mp4", "not found")),
    ("source-not-video", "run --source {text_mp4} --model {onnx} --boxes {boxes}", ("text.mp4",)),
    ("source-empty-folder", "run --source {empty} --model {onnx} --boxes {boxes}", ("empty", "image")),
    ("source-bad-scheme", "run --source ftp://cam/x --model {onnx} --boxes {boxes}", ("ftp://", "rtsp://")),
    ("source-bad-port", "run --source rtsp://u:p@cam:99999/x --model {onnx} --boxes {boxes}", ("port",)),
    # --- boxes files
    ("boxes-missing", "run --source {clip} --model {onnx} --boxes {tmp}/none.json", ("none.json", "not found")),
    ("boxes-bad-json", "run --source {clip} --model {onnx} --boxes {boxes_badjson}", ("b1.json", "JSON")),
    ("boxes-nan-index", "run --source {clip} --model {onnx} --boxes {boxes_nan_index}", ("b2.json", "index")),
    ("boxes-inf-id", "run --source {clip} --model {onnx} --boxes {boxes_inf_id}", ("b3.json", "ids")),
    ("boxes-not-utf8", "run --source {clip} --model {onnx} --boxes {boxes_latin1}", ("b4.csv", "UTF-8")),
    ("boxes-bad-header", "run --source {clip} --model {onnx} --boxes {boxes_header}", ("b5.csv", "header")),
    ("boxes-x2-before-x1", "run --source {clip} --model {onnx} --boxes {boxes_swapped}", ("b6.json", "x2 > x1")),
    ("boxes-nan-csv", "run --source {clip} --model {onnx} --boxes {boxes_nan_csv}", ("b7.csv", "line 2")),
    ("boxes-wrong-suffix", "run --source {clip} --model {onnx} --boxes {text_mp4}", ("text.mp4", ".json or .csv")),
    # --- output paths: under a regular file, or where nothing can be written
    ("run-out-under-file", "run --source {clip} --model {onnx} --boxes {boxes} -o {blocker}/x.mp4", ("blocker",)),
    (
        "run-events-under-file",
        "run --source {clip} --model {onnx} --boxes {boxes} --events {blocker}/e.jsonl",
        ("blocker",),
    ),
    (
        "run-out-unwritable",
        "run --source {clip} --model {onnx} --boxes {boxes} -o /proc/emoedge/x.mp4",
        ("/proc/emoedge",),
    ),
    ("export-onnx-under-file", "export onnx {ckpt} -o {blocker}/x.onnx", ("blocker",)),
    ("precision-under-file", "export precision --fp16 {onnx} -o {blocker}/x.onnx", ("blocker",)),
    ("train-out-under-file", "train sample --data {data} -o {blocker}/run", ("blocker",)),
    ("eval-out-under-file", "eval {ckpt} --data {data} -o {blocker}/report", ("blocker",)),
    ("sample-under-file", "sample {blocker}/sample", ("blocker",)),
    ("sample-unwritable", "sample /proc/emoedge-sample", ("/proc/emoedge-sample",)),
    # --- numeric options
    ("eval-negative-workers", "eval {ckpt} --data {data} --workers -2", ("workers", "-2")),
    ("export-onnx-opset", "export onnx {ckpt} -o {tmp}/o.onnx --opset 5", ("opset 5", "11 to 20")),
    ("run-every-zero", "run --source {clip} --model {onnx} --boxes {boxes} --every 0", ("every", "0")),
    ("run-smooth-one", "run --source {clip} --model {onnx} --boxes {boxes} --smooth 1.5", ("smooth", "1.5")),
    ("run-max-frames-zero", "run --source {clip} --model {onnx} --boxes {boxes} --max-frames 0", ("max_frames",)),
    ("run-not-a-number", "run --source {clip} --model {onnx} --boxes {boxes} --every two", ("--every", "two")),
    ("int8-max-images", "export precision --int8 {onnx} --calib {clip} --max-images 0", ("max_images", "0")),
    ("precision-max-drop", "export precision --fp16 {onnx} --data {data} --max-map-drop -1", ("-1",)),
    (
        "engine-persons-zero",
        "export engine {onnx} --target desktop-gpu persons.max=0",
        ("desktop-gpu.yaml", "persons", "max 0"),
    ),
    ("pretrain-missing-data", "pretrain --branch place --data {tmp}/none -o {tmp}/p", ("none",)),
    ("pretrain-negative-lr", "pretrain --branch place --data {data} -o {tmp}/p2 --lr -1", ("lr", "-1")),
    ("pretrain-out-under-file", "pretrain --branch scene --data {data} -o {blocker}/p", ("blocker",)),
    ("run-bad-device", "run --source {clip} --model {onnx} --boxes {boxes} --device gpu7", ("gpu7",)),
    ("run-bad-precision", "run --source {clip} --model {onnx} --boxes {boxes} --precision fp8", ("--precision", "fp8")),
    (
        "run-old-timeout-key",
        "run --source {clip} --model {onnx} --boxes {boxes} connect_timeout=5",
        ("connect_timeout", "connect_timeout_s"),
    ),
    (
        "run-http-bad-port",
        "run --source {clip} --model {onnx} --boxes {boxes} --http 99999",
        ("99999", "PORT a number from 1 to 65535"),
    ),
    # --- events to a broker
    (
        "publish-wildcard",
        "run --source {clip} --model {onnx} --boxes {boxes} --publish mqtt://127.0.0.1/emo/+",
        ("wildcards",),
    ),
    (
        "publish-not-mqtt",
        "run --source {clip} --model {onnx} --boxes {boxes} --publish http://127.0.0.1/emo",
        ("mqtt://",),
    ),
    ("publish-no-topic", "run --source {clip} --model {onnx} --boxes {boxes} --publish mqtt://127.0.0.1", ("a topic",)),
    ("run-sources-missing", "run --sources {tmp}/none.yaml --model {onnx}", ("none.yaml",)),
    # --- checked before any work, and nothing it created left behind
    (
        "bench-missing-detector",
        "bench {onnx} --detector {tmp}/missing.pt -o {tmp}/benchdir --seconds 0.1",
        ("missing.pt", "not found"),
    ),
    (
        "eval-missing-image",
        "eval {ckpt} --data {data_noimage} --split train -o {tmp}/evaldir/report",
        ("emoedge_train_0000.jpg",),
    ),
    (
        "run-missing-model-file",
        "run --source {clip} --model {tmp}/none.onnx --boxes {boxes} -o {tmp}/rundir/x.mp4 "
        "--events {tmp}/rundir/e.jsonl",
        ("none.onnx",),
    ),
    ("demo-zero-epochs", "demo {tmp}/demodir --epochs 0", ("epochs", "0")),
    ("export-triton-bad-name", "export triton {onnx} -o {tmp}/repo --name a/b", ("a/b",)),
    (
        "explain-missing-image",
        "explain {ckpt} --image {tmp}/none.jpg --box 1,1,9,9 -o {tmp}/whydir/x.png",
        ("none.jpg",),
    ),
]


BOXES_FILES = {  # placeholder: (file name, content)
    "boxes_badjson": ("b1.json", "{not json"),
    "boxes_nan_index": ("b2.json", '{"frames": [{"index": NaN, "boxes": [[1, 1, 9, 9]]}]}'),
    "boxes_inf_id": ("b3.json", '{"frames": [{"index": 0, "boxes": [[1, 1, 9, 9]], "ids": [Infinity]}]}'),
    "boxes_header": ("b5.csv", "frame,left,top,right,bottom\n0,1,1,9,9\n"),
    "boxes_swapped": ("b6.json", '{"frames": [{"index": 0, "boxes": [[9, 1, 2, 9]]}]}'),
    "boxes_nan_csv": ("b7.csv", "frame,x1,y1,x2,y2\nnan,1,1,9,9\n"),
}


def _bad_dataset(src: Path, dst: Path, row: int, column: str, value: str) -> Path:
    """A copy of the sample with one field of the CSV annotations of train replaced."""
    import csv

    shutil.copytree(src, dst)
    path = dst / "emotic_pre" / "train.csv"
    rows = list(csv.DictReader(path.read_text().splitlines()))
    rows[row][column] = value
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dst


def _onnx_with_card(path: Path, card_text: str) -> Path:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph, producer_name="someone-else")
    if card_text:
        onnx.helper.set_model_props(model, {FORMAT_KEY: FORMAT, CARD_KEY: card_text})
    onnx.save(model, path)
    return path


class _Payload:
    def __reduce__(self):
        return (print, ("executed",))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, sample_root: Path) -> dict[str, str]:
    from emoedge.runtime.clip import make_demo_clip

    tmp = tmp_path_factory.mktemp("bad-inputs")
    ckpt = random_checkpoint(tmp / "model.pt")
    clip, boxes = make_demo_clip(sample_root, tmp / "clip", images=2)
    (tmp / "empty").mkdir()
    (tmp / "blocker").write_text("a file where a folder should be")
    (tmp / "text.pt").write_text("hello")
    (tmp / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()[1:] + b"x")
    (tmp / "text.mp4").write_text("not a video")
    good = tmp / "good.pt"
    torch.save({"w": torch.zeros(1000)}, good)
    (tmp / "half.pt").write_bytes(good.read_bytes()[:2000])
    torch.save({"format": "emoedge-checkpoint", "x": _Payload()}, tmp / "evil.pt")
    torch.save({"w": torch.zeros(2)}, tmp / "foreign.pt")
    data = torch.load(ckpt, weights_only=True)
    data["card"]["thresholds"] = [0.5]
    torch.save(data, tmp / "badcard.pt")
    (tmp / "random.onnx").write_bytes(b"\x08\x07garbage" * 50)
    (tmp / "x.engine").write_bytes(b"not an engine")
    sample = resources.find("recipe", "sample")
    recipes = {
        "unknown.yaml": f"base: {sample}\noptim:\n  learning_rate: 0.1\n",
        "type.yaml": f"base: {sample}\noptim:\n  epochs: many\n",
        "bad.yaml": f"base: {sample}\noptim: [unclosed\n",
        "list.yaml": "- 1\n- 2\n",
        "base.yaml": f"base: {tmp}/nowhere.yaml\n",
    }
    for name, text in recipes.items():
        (tmp / name).write_text(text)
    for name, text in BOXES_FILES.values():
        (tmp / name).write_text(text)
    (tmp / "b4.csv").write_bytes("frame,x1,y1,x2,y2\n0,1,1,9,9 # caf\xe9\n".encode("latin-1"))
    onnx_path = export_onnx(ckpt, tmp / "model.onnx").path
    (tmp / "half.onnx").write_bytes(onnx_path.read_bytes()[: onnx_path.stat().st_size // 2])
    return {
        "tmp": str(tmp),
        "data": str(sample_root),
        "empty": str(tmp / "empty"),
        "blocker": str(tmp / "blocker"),
        "ckpt": str(ckpt),
        "onnx": str(onnx_path),
        "clip": str(clip),
        "boxes": str(boxes),
        "engine": str(tmp / "x.engine"),
        "text_mp4": str(tmp / "text.mp4"),
        "random_onnx": str(tmp / "random.onnx"),
        "half_onnx": str(tmp / "half.onnx"),
        "foreign_onnx": str(_onnx_with_card(tmp / "foreign.onnx", "")),
        "badcard_onnx": str(_onnx_with_card(tmp / "badcard.onnx", '{"categories": 5}')),
        **{f"{name}_pt": str(tmp / f"{name}.pt") for name in ("text", "random", "half", "evil", "foreign", "badcard")},
        **{f"recipe_{name}": str(tmp / f"{name}.yaml") for name in ("unknown", "type", "bad", "list", "base")},
        "recipe_yaml": str(tmp / "bad.yaml"),
        **{key: str(tmp / name) for key, (name, _) in BOXES_FILES.items()},
        "boxes_latin1": str(tmp / "b4.csv"),
        "data_nan": str(_bad_dataset(sample_root, tmp / "d-nan", 0, "BBox", "[nan, 9, 67, 107]")),
        "data_swapped": str(_bad_dataset(sample_root, tmp / "d-swap", 0, "BBox", "[67, 9, 11, 107]")),
        "data_outside": str(_bad_dataset(sample_root, tmp / "d-out", 0, "BBox", "[500, 400, 600, 500]")),
        "data_badcsv": str(_csv_without_header(sample_root, tmp / "d-badcsv")),
        "data_textjpg": str(_replace_image(sample_root, tmp / "d-text", b"just text, not a JPEG")),
        "data_noimage": str(_replace_image(sample_root, tmp / "d-missing", None)),
    }


def _csv_without_header(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    path = dst / "emotic_pre" / "train.csv"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    return dst


def _replace_image(src: Path, dst: Path, content: bytes | None) -> Path:
    """A copy of the sample whose first train image is text (or gone)."""
    shutil.copytree(src, dst)
    image = next((dst / "emotic").rglob("emoedge_train_0000.jpg"))
    if content is None:
        image.unlink()
    else:
        image.write_bytes(content)
    return dst


@dataclass
class Runs:
    """Every case's result, keyed by id, and the paths that appeared under the inputs' folder meanwhile."""

    results: dict[str, object]
    created: set[Path]


@pytest.fixture(scope="module")
def runs(files: dict[str, str]) -> Runs:
    """Every case run once, two at a time (the machine's cores)."""
    tmp = Path(files["tmp"])
    before = set(tmp.rglob("*"))
    argvs = [[arg.format(**files) for arg in argv.split()] for _, argv, _ in CASES]
    results = dict(zip([case_id for case_id, _, _ in CASES], run_cli_many(argvs, workers=2)))
    return Runs(results, set(tmp.rglob("*")) - before)


def test_the_table_covers_every_kind_of_input() -> None:
    assert len(CASES) >= 60
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)
    commands = {argv.split()[0] for _, argv, _ in CASES}
    assert commands >= {"sample", "data", "train", "eval", "explain", "export", "run", "bench", "demo"}


@pytest.mark.parametrize(("case_id", "needles"), [(case_id, needles) for case_id, _, needles in CASES])
def test_bad_input_is_one_line(runs: Runs, case_id: str, needles: tuple[str, ...]) -> None:
    assert_one_line_error(runs.results[case_id], *needles)


def test_a_refused_command_leaves_nothing_behind(runs: Runs) -> None:
    """No file or folder appeared where any of the refused commands was told to write (checked before the work, or
    removed when the command failed): the folder of their inputs holds what it held before."""
    assert sorted(map(str, runs.created)) == []
