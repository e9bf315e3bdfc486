"""How PyTorch runs a checkpoint: eager on the CPU, CUDA graphs on CUDA (`--cuda-graphs`), torch.compile on request
(`--compile`); the choice's rules, its refusals in one line, its options, and compiled outputs equal to eager ones.

The CUDA graph capture itself needs a GPU: tests/gpu/test_gpu_graphs.py compares it with eager there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli  # type: ignore[import-not-found]
from model_helpers import one_line  # type: ignore[import-not-found]

from emoedge import options
from emoedge.backends import load_model
from emoedge.backends.torch import GRAPH_FRAMES, GRAPH_PERSONS, execution
from emoedge.bench.models import random_checkpoint
from emoedge.cli import build_parser
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import example_inputs, export_onnx, spread
from emoedge.runtime.settings import RunSettings

FP32_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("graphs")
    checkpoint = random_checkpoint(root / "model.pt", seed=1)
    return {"checkpoint": checkpoint, "onnx": export_onnx(checkpoint, root / "model.onnx").path}


@pytest.mark.parametrize("cuda_graphs", ["auto", "off"])
def test_a_checkpoint_on_the_cpu_runs_eager_and_unbucketed(model_files, cuda_graphs):
    backend = load_model(model_files["checkpoint"], device="cpu", cuda_graphs=cuda_graphs)
    assert backend.reason.endswith(", eager") and "channels_last" in backend.reason
    assert not backend.bucketed and backend.max_frames is None and backend.max_persons is None
    assert backend.graph_shapes == []
    assert backend.warm_shapes(3, 20) == [(3, 1)]  # one call sets a dynamic-shape runtime up: nothing bucketed


@pytest.mark.parametrize(
    ("cuda_graphs", "compile", "on_cuda", "graphs", "mode", "words"),
    [
        ("auto", False, True, True, None, "CUDA graphs per shape bucket"),
        ("on", False, True, True, None, "CUDA graphs per shape bucket"),
        ("off", False, True, False, None, "eager (cuda_graphs off)"),
        ("auto", False, False, False, None, "eager"),
        ("off", False, False, False, None, "eager"),
        ("auto", True, True, False, "reduce-overhead", "torch.compile (reduce-overhead)"),  # compile's own graphs
        ("off", True, True, False, "default", "torch.compile (default)"),
        ("auto", True, False, False, "default", "torch.compile (default)"),
    ],
)
def test_graphs_are_captured_on_cuda_unless_off_and_compile_brings_its_own(
    cuda_graphs, compile, on_cuda, graphs, mode, words
):
    got_graphs, got_mode, got_words = execution(cuda_graphs, compile, on_cuda)
    assert (got_graphs, got_mode) == (graphs, mode)
    assert got_words.startswith(words)


@pytest.mark.parametrize(
    ("cuda_graphs", "needle"),
    [
        ("on", "cuda_graphs 'on': CUDA graphs need a CUDA device"),
        ("sometimes", "expected one of ['auto', 'on', 'off']"),
    ],
)
def test_graphs_on_a_cpu_or_a_bad_value_is_one_line_before_the_model_loads(model_files, cuda_graphs, needle):
    with pytest.raises(EmoedgeError) as exc:
        load_model(model_files["checkpoint"], device="cpu", cuda_graphs=cuda_graphs)
    assert needle in one_line(exc)


def test_compile_for_a_model_pytorch_does_not_run_isone_line(model_files):
    with pytest.raises(EmoedgeError) as exc:
        load_model(model_files["onnx"], device="cpu", compile=True)
    message = one_line(exc)
    assert "--compile applies to checkpoints run by PyTorch" in message
    assert str(model_files["onnx"]) in message and "run by onnxruntime" in message
    with pytest.raises(EmoedgeError, match="run by triton"):  # refused before the Triton client is imported
        load_model("grpc://127.0.0.1:1/emoedge", compile=True)


@pytest.mark.parametrize("cuda_graphs", ["on", "off"])
def test_graph_options_for_a_backend_that_captures_none_areone_line(cuda_graphs):
    with pytest.raises(EmoedgeError) as exc:  # refused before the Triton client is imported
        load_model("grpc://127.0.0.1:1/emoedge", cuda_graphs=cuda_graphs)
    message = one_line(exc)
    assert f"--cuda-graphs {cuda_graphs}: triton runs grpc://127.0.0.1:1/emoedge" in message
    assert "only torch, onnxruntime, tensorrt capture CUDA graphs" in message


def test_an_onnx_model_loads_with_the_defaults(model_files):
    assert load_model(model_files["onnx"], device="cpu", cuda_graphs="auto", compile=False).name == "onnxruntime"


def test_run_options_and_keys_set_cuda_graphs_and_compile():
    parser = build_parser()
    argv = ["run", "--source", "c.mp4", "--model", "m.pt"]
    defaults = options.from_args(RunSettings, parser.parse_args(argv), [], "run settings")
    assert (defaults.cuda_graphs, defaults.compile) == ("auto", False)
    given = options.from_args(RunSettings, parser.parse_args([*argv, "--cuda-graphs", "off", "--compile"]), [], "run")
    assert (given.cuda_graphs, given.compile) == ("off", True)
    overridden = options.from_args(RunSettings, parser.parse_args([*argv, "--cuda-graphs", "off"]), ["cuda_graphs=auto"],
                                   "run settings")  # fmt: skip
    assert overridden.cuda_graphs == "auto"  # the key wins over the option
    with pytest.raises(EmoedgeError, match="run settings: cuda_graphs 'sometimes'"):
        options.from_args(RunSettings, parser.parse_args(argv), ["cuda_graphs=sometimes"], "run settings")
    evaluated = parser.parse_args(["eval", "m.pt", "--data", "d", "--cuda-graphs", "on", "--compile"])
    assert (evaluated.cuda_graphs, evaluated.compile) == ("on", True)


@pytest.mark.parametrize("command", ["run", "eval"])
def test_help_lists_the_options_and_a_bad_value_is_argparsesone_line(command):
    helped = run_cli(command, "--help")
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())  # argparse wraps the help texts
    assert "--cuda-graphs {auto,on,off}" in text and "--compile" in text
    assert "a CPU never uses graphs" in text and "costs tens of seconds at start" in text
    required = ["--source", "c.mp4", "--model", "m.pt"] if command == "run" else ["m.pt", "--data", "d"]
    bad = run_cli(command, *required, "--cuda-graphs", "sometimes")
    assert_one_line_error(bad, "argument --cuda-graphs: invalid choice: 'sometimes'")


def test_eval_refuses_graphs_on_a_cpu_inone_line(model_files, tmp_path):
    proc = run_cli("eval", str(model_files["checkpoint"]), "--data", str(tmp_path), "--device", "cpu",
                   "--cuda-graphs", "on", "-o", str(tmp_path / "report"))  # fmt: skip
    assert_one_line_error(proc, "cuda_graphs 'on'")
    assert not (tmp_path / "report").exists()


def test_eval_with_graphs_off_reports_the_checkpoint_and_the_eager_backend(model_files, sample_root, tmp_path):
    out = tmp_path / "report"
    proc = run_cli("eval", str(model_files["checkpoint"]), "--data", str(sample_root), "--device", "cpu",
                   "--cuda-graphs", "off", "--workers", "0", "--quiet", "-o", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    extra = json.loads((out / "results.json").read_text())["extra"]
    assert extra["model"] == str(model_files["checkpoint"]) and extra["backend"].endswith(", eager")
    assert (out / "gallery").is_dir()  # a checkpoint's Figure-1 gallery: the loaded backend kept its file's path


def test_compile_on_the_cpu_gives_the_eager_outputs(model_files):
    """torch.compile (inductor, C++ on the CPU) of one bucket: N = 3 persons over 1 frame runs as N = 4, the padded
    row dropped. Tens of seconds the first time; inductor's on-disk cache makes a rerun take a few."""
    eager = load_model(model_files["checkpoint"], device="cpu", precision="fp32")
    compiled = load_model(model_files["checkpoint"], device="cpu", precision="fp32", compile=True)
    assert compiled.reason.endswith(", torch.compile (default)")
    assert compiled.bucketed and (compiled.max_frames, compiled.max_persons) == (GRAPH_FRAMES, GRAPH_PERSONS)
    config = torch._dynamo.config
    limit = getattr(config, "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit")  # < 2.6
    assert limit >= len(compiled.warm_shapes(GRAPH_FRAMES, GRAPH_PERSONS))
    image, body = (t.numpy() for t in example_inputs(eager.card, 3, seed=3))
    frame = spread(3, 1).numpy()
    want, got = eager.infer(image, body, frame), compiled.infer(image, body, frame)
    assert set(got) == set(want) == {"scores", "modality_weights", "vad"}
    for key, value in want.items():
        assert got[key].shape == value.shape
        np.testing.assert_allclose(got[key], value, rtol=0, atol=FP32_TOLERANCE, err_msg=key)


def test_compile_without_a_working_cpp_compiler_isone_line(tmp_path):
    """Inductor's real failure (its C++ compiler set to a missing file, a fresh cache so nothing is reused) becomes
    one line naming the reason and that --compile can be left off; in a process of its own, as inductor reads
    both settings once."""
    code = textwrap.dedent(
        """
        import torch
        from pathlib import Path
        from emoedge.backends.torch import _compiled
        from emoedge.errors import EmoedgeError
        forward = _compiled(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()), "default", Path("m.pt"))
        try:
            with torch.inference_mode():
                forward(torch.randn(2, 4))
        except EmoedgeError as exc:
            print(exc)
        """
    )
    env = {"CXX": str(tmp_path / "missing-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith("model m.pt: torch.compile cannot compile it here (") and "C++ compiler" in lines[0]
    assert lines[0].endswith("; leave --compile off")
