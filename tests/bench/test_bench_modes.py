"""`emoedge bench` measures a checkpoint in every way PyTorch runs it here, side by side: every row names its `mode`;
a CPU has "eager" only and the report says that graphs are CUDA's; a CUDA GPU adds "cuda graphs" (with the GPU memory
their captured buckets hold) and, when asked, "compiled"; GPU engines and ONNX files on ONNX Runtime's CUDA provider
are measured eager and with graphs; other files run one way, "default"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_helpers import BODY_CARD, engine_info  # type: ignore[import-not-found]

from emoedge.bench.models import random_checkpoint
from emoedge.bench.plan import BenchPlan
from emoedge.bench.run import bench, modes
from emoedge.errors import EmoedgeError
from emoedge.formats.engine import write_engine_info


def fake_engine(folder: Path, **fields) -> Path:
    """An engine file with its sidecar (`fields` replace the sidecar's): what `modes` reads; never run."""
    folder.mkdir()
    engine = folder / "m.engine"
    engine.write_bytes(b"\0" * 64)
    write_engine_info(engine, engine_info(BODY_CARD, engine_bytes=64, **fields))
    return engine


def test_a_cpu_bench_has_the_eager_rows_and_says_graphs_are_cuda_only(tmp_path: Path) -> None:
    model = random_checkpoint(tmp_path / "tiny.pt")
    plan = BenchPlan(persons=(1, 2), streams=2, seconds=0.05, frames=3, device="cpu")
    paths = bench(model, tmp_path / "report", plan, progress=False)["paths"]
    result = json.loads(paths["json"].read_text())
    assert [(m["mode"], m["gpu_memory"]) for m in result["modes"]] == [("eager", None)]
    assert {r["mode"] for r in result["engine"] + result["pipeline"] + result["streams"]} == {"eager"}
    assert len(result["engine"]) == 4 and all(r["max_abs_diff"] == 0.0 for r in result["engine"])  # eager itself
    text = paths["markdown"].read_text()
    assert "- graphs: CUDA only" in text and "- compiled: not measured (--compile)" in text
    for row in ("| eager | shared | 2 |", "| eager | per person | 1 |", "| eager | boxes given |", "- eager: "):
        assert row in text
    assert "## GPU memory" not in text


def test_modes_follow_the_file_the_device_and_the_compile_request(tmp_path: Path) -> None:
    cpu = BenchPlan(device="cpu")
    assert modes(tmp_path / "m.pt", cpu) == (["eager"], ["graphs: CUDA only", "compiled: not measured (--compile)"])
    compiled = BenchPlan(device="cpu", compile=True)
    assert modes(tmp_path / "m.pt", compiled) == (["eager", "compiled"], ["graphs: CUDA only"])
    assert modes(tmp_path / "m.onnx", cpu)[0] == ["default"]
    assert modes(tmp_path / "m.onnx", BenchPlan(device="cuda")) == (
        ["eager", "cuda graphs"],
        ["compiled: checkpoints only"],
    )
    gpu_engine, dla_engine = fake_engine(tmp_path / "gpu"), fake_engine(tmp_path / "dla", dla_core=0)
    assert modes(gpu_engine, BenchPlan())[0] == ["eager", "cuda graphs"]
    assert modes(dla_engine, BenchPlan())[0] == ["default"]  # DLA tasks are not captured in CUDA graphs
    with pytest.raises(EmoedgeError, match=r"--compile: torch.compile compiles checkpoints \(.pt, .pth\); .*m.onnx"):
        modes(tmp_path / "m.onnx", compiled)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_a_cuda_bench_has_eager_and_graph_rows_with_the_memory_the_graphs_hold(tmp_path: Path) -> None:
    model = random_checkpoint(tmp_path / "tiny.pt")
    plan = BenchPlan(persons=(1, 8), streams=2, seconds=0.05, frames=3, device="cuda")
    result = bench(model, tmp_path / "report", plan, progress=False)
    assert [m["mode"] for m in result["modes"]] == ["eager", "cuda graphs"]
    graphs = result["modes"][1]["gpu_memory"]
    assert list(graphs["buckets"]) == [f"F=1 N={n}" for n in (1, 2, 4, 8)] and graphs["held_mib"] > 0
    rows = {(r["mode"], r["way"], r["persons"]): r for r in result["engine"]}
    assert len(rows) == 8 and all(r["max_abs_diff"] < 1e-3 for r in rows.values())  # FP32: graphs replay eager
    assert [r["mode"] for r in result["streams"]] == ["eager", "cuda graphs"]
    assert "| cuda graphs | shared | 8 |" in result["paths"]["markdown"].read_text()
