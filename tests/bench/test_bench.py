"""`emoedge bench`: the report holds every point it promises, with the machine described; the FLOP count and the
GEMM rate it divides by are right; the makers the benchmarks and tests share (random-weight checkpoints, clips, the
machine's description) do what they say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest
import torch

from emoedge.backends.torch import cpu_bf16_feature
from emoedge.bench.clip import make_clip
from emoedge.bench.machine import describe, machine_line
from emoedge.bench.models import random_checkpoint, random_recipe
from emoedge.bench.peak import gemm_rate, model_gflop
from emoedge.bench.plan import BenchPlan
from emoedge.bench.run import START_UP, bench
from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.formats.checkpoint import load_trained_model, read_checkpoint


def _has_ultralytics() -> bool:
    from emoedge.runtime.yolo import import_ultralytics

    try:
        import_ultralytics()
    except EmoedgeError:
        return False
    return True


def test_bench_writes_engine_end_to_end_and_streams_with_the_machine(tmp_path: Path) -> None:
    model = random_checkpoint(tmp_path / "tiny.pt")
    detector = "yolo11n.yaml" if _has_ultralytics() else None
    plan = BenchPlan(persons=(1, 3), streams=2, detector=detector, seconds=0.05, frames=6, device="cpu")
    returned = bench(model, tmp_path / "report", plan, progress=False)
    paths = returned["paths"]
    result = json.loads(paths["json"].read_text())
    assert result == json.loads(json.dumps({k: v for k, v in returned.items() if k != "paths"}))

    engine = {(r["way"], r["persons"]): r for r in result["engine"]}
    assert set(engine) == {("shared", 1), ("per person", 1), ("shared", 3), ("per person", 3)}
    for row in engine.values():
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["calls"] >= 7
        assert row["gflop"] > 0 and row["gemm_gflop_per_s"] > 0
        assert row["of_peak"] == pytest.approx(row["gflop_per_s"] / row["gemm_gflop_per_s"])
    # the shared call computes the context once: less arithmetic than three single-person calls
    assert (
        engine["shared", 3]["gflop"]
        < engine["per person", 3]["gflop"]
        == pytest.approx(3 * engine["shared", 1]["gflop"])
    )

    ways = [r["way"] for r in result["pipeline"]]
    assert ways == [START_UP, "boxes given"] + (["detector, every 1", "detector, every 3"] if detector else [])
    for row in result["pipeline"]:
        assert row["frames"] == 6 and row["fps"] > 0 and row["events"] > 0 and "engine" in row["stages"]
        assert all(stage["first_p90_ms"] > 0 for stage in row["stages"].values())
    if detector:
        detect_calls = {r["way"]: r["stages"]["detect"] for r in result["pipeline"] if "detector" in r["way"]}
        # the median tick: a detection with every 1, a coasting tracker with every 3 (the median, not the mean: one
        # slow call on a busy machine must not decide it)
        assert detect_calls["detector, every 3"]["p50_ms"] < detect_calls["detector, every 1"]["p50_ms"]
    (streams,) = result["streams"]  # one row per mode: eager only on a CPU
    assert streams["mode"] == "eager" and streams["frames"] == 12 and streams["engine_calls"] == streams["ticks"]

    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["libraries"]["torch"] and machine["cpu"]
    assert machine["commit"] is None or len(machine["commit"]) >= 7
    text = paths["markdown"].read_text()
    for heading in ("## Engine alone", "## End to end", "## 2 streams in one process", "| shared | 3 |"):
        assert heading in text
    start = {r["way"]: r for r in result["pipeline"]}
    first, steady = start[START_UP]["stages"]["engine"]["first_p90_ms"], start["boxes given"]["stages"]["engine"]
    assert f"| eager | engine | {first:.1f} | {steady['p50_ms']:.1f} |" in text  # the start against the steady p50


def test_bench_without_a_folder_prints_its_tables_and_writes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    """As `yolo benchmark` does: the report on the terminal; -o DIR only adds the files."""
    model = random_checkpoint(tmp_path / "tiny.pt")
    monkeypatch.chdir(tmp_path)
    result = bench(model, None, BenchPlan(persons=(1,), seconds=0.05, frames=3, device="cpu"), progress=True)
    printed = capsys.readouterr().out
    assert "paths" not in result and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
    for heading in ("## Engine alone", "| shared | 1 |", "## End to end", "| boxes given |"):
        assert heading in printed


def test_the_paper_model_counts_as_three_resnet50s() -> None:
    """ResNet50 at 224 px is 4.1 GMAC (8.2 GFLOP): the paper model is three of them, plus a small fusion."""
    card = ModelCard(
        name="paper", branches=("body", "place", "scene"),
        backbones={"body": "resnet50", "place": "resnet50", "scene": "resnet50"},
        fusion="attention", image_size=(224, 224), body_size=(224, 224),
    )  # fmt: skip
    one, four = model_gflop(card, 1), model_gflop(card, 4)
    assert 23.5 < one < 25.5
    assert four - one == pytest.approx(3 * one / 3, rel=0.02)  # three more body passes: one branch each


def test_gemm_rates_and_plans() -> None:
    assert gemm_rate("fp32") > 1 and gemm_rate("nf4") is None and gemm_rate("fp16") is None
    bf16 = gemm_rate("bf16")  # measured only where the CPU does BF16 in hardware
    assert bf16 > 1 if cpu_bf16_feature() else bf16 is None
    for kwargs, needle in (
        ({"persons": (4, 0)}, "persons[1] 0: expected an integer >= 1"),
        ({"persons": ()}, "persons (): expected at least one"),
        ({"persons": (1.5,)}, "persons[0]: expected int, got 1.5"),
        ({"streams": 0}, "streams 0: expected an integer from 1 to 64"),
        ({"seconds": 0}, "seconds 0.0: expected a number in (0, 600]"),
        ({"seconds": 601}, "seconds 601.0: expected a number in (0, 600]"),
        ({"frames": 0}, "frames 0: expected an integer from 1 to 100000"),
        ({"device": "gpu"}, "device 'gpu': expected auto, cpu, cuda[:K], tensorrt[:K] or openvino[:CPU|GPU|NPU|AUTO]"),
        ({"source": Path("clip.mp4")}, "give its --boxes or a --detector"),
    ):
        with pytest.raises(EmoedgeError, match=re.escape(needle)):
            BenchPlan(**kwargs)  # type: ignore[arg-type]


def test_random_checkpoints_are_seeded_look_trained_and_take_model_overrides(tmp_path: Path) -> None:
    before = torch.get_rng_state()
    first, again = random_checkpoint(tmp_path / "a.pt"), random_checkpoint(tmp_path / "b.pt")
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random state is left alone
    a, b = read_checkpoint(first)["model"], read_checkpoint(again)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    other = random_checkpoint(tmp_path / "c.pt", seed=1, branches=["body", "scene"], fusion="concat", vad=False)
    net, card, recipe = load_trained_model(other)
    assert (card.name, card.branches, card.fusion, card.vad) == ("sample", ("body", "scene"), "concat", False)
    assert recipe.model.weights == {} and card.thresholds[0] == pytest.approx(0.2)
    assert card.thresholds[-1] == pytest.approx(0.7)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(float(m.running_var.min()) != 1.0 for m in norms)  # statistics as after training

    assert random_recipe("edge").model.backbones["body"] == "resnet18"  # any shipped recipe, by name
    with pytest.raises(EmoedgeError, match="model.brnches: unknown key"):
        random_checkpoint(tmp_path / "d.pt", brnches=["body"])


def test_make_clip_writes_figures_that_never_overlap_and_their_boxes(tmp_path: Path) -> None:
    video, boxes = make_clip(tmp_path, (320, 240), 3, frames=6)
    assert (video.name, boxes.name) == ("clip_320x240_3.mp4", "clip_320x240_3.json")
    frames = json.loads(boxes.read_text())["frames"]
    assert [f["index"] for f in frames] == list(range(6)) and all(f["ids"] == [10, 11, 12] for f in frames)
    for frame in frames:
        assert all(0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240 for x1, y1, x2, y2 in frame["boxes"])
        assert all(left[2] <= right[0] for left, right in zip(frame["boxes"], frame["boxes"][1:]))
    capture = cv2.VideoCapture(str(video))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == 6


def test_machine_line_names_the_libraries_asked_for() -> None:
    machine = describe()
    line = machine_line(machine, ("torch", "no-such-library"))
    assert line.startswith(f"{machine['cpu']}, {machine['cores']} cores")
    assert f"torch {machine['libraries']['torch']}" in line and "no-such-library" not in line and "numpy" not in line
