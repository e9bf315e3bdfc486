"""TensorRT export: strict target files, precision rules per TensorRT version, the trtexec line, the sidecar, errors.

Building an engine needs TensorRT and a CUDA GPU, which CI does not have: the tests that build skip unless both are
present (TensorRT is never faked). Everything else — targets, version rules, trtexec line, sidecar, version/GPU
mismatch detection, the errors when TensorRT or the GPU is missing — runs everywhere.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shlex
from pathlib import Path

import onnx
import pytest
import torch
from cli_helpers import REPO  # type: ignore[import-not-found]
from engine_helpers import engine_info  # type: ignore[import-not-found]

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.export.targets import Persons, Target, load_target
from emoedge.export.tensorrt import build_engine, builder_flags, trtexec_command
from emoedge.formats.engine import (
    EngineInfo,
    check_compatible,
    read_engine_info,
    sidecar_path,
    write_engine_info,
)
from emoedge.formats.onnx import read_onnx_card
from emoedge.formats.tensorrt import (
    INSTALL_HINT,
    CudaGpu,
    cuda_gpu,
    import_tensorrt,
    strongly_typed_build,
)

SHIPPED = sorted((REPO / "export").glob("*.yaml"))
BASE = "persons: {min: 1, opt: 4, max: 16}\nprecision: fp16\nworkspace_mib: 512\n"
CARD = ModelCard(
    name="t",
    branches=("body", "place"),
    backbones={"body": "tiny", "place": "tiny"},
    fusion="attention",
    image_size=(64, 80),
    body_size=(48, 32),
)
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def target(precision: str = "fp16", **kwargs) -> Target:
    kwargs.setdefault("persons", Persons(1, 4, 32))
    return Target(precision=precision, workspace_mib=4096, name="t", **kwargs)


def info(**kwargs) -> EngineInfo:
    return engine_info(CARD, **kwargs)


@pytest.fixture
def trt_gpu():
    """TensorRT and a CUDA GPU, or skip: building for real cannot happen in CI."""
    trt = pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return trt


# --- targets -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_targets_load(path):
    loaded = load_target(path)
    assert loaded.name == path.stem and loaded.description and loaded.timing_cache


def test_desktop_and_jetson_targets():
    desktop, orin, dla = (
        load_target(REPO / "export" / f"{n}.yaml") for n in ("desktop-gpu", "jetson-orin", "jetson-orin-dla")
    )
    assert desktop.persons == Persons(1, 4, 32) and desktop.precision == "fp16" and desktop.workspace_mib == 4096
    assert desktop.dla_core is None
    assert orin.persons == Persons(1, 4, 16) and orin.precision == "fp16" and orin.workspace_mib < desktop.workspace_mib
    assert dla.dla_core == 0 and dla.gpu_fallback and dla.precision in ("fp16", "int8")
    assert load_target(REPO / "export" / "desktop-gpu-int8.yaml").precision == "int8"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "workspace: 1\n", "workspace: unknown key"),
        (BASE + "dla_core: '0'\n", "dla_core: expected int"),
        (BASE.replace("max: 16", "max: '16'"), "persons.max: expected int"),
        (BASE + "gpu_fallback: 1\n", "gpu_fallback: expected bool"),
        (BASE.replace("workspace_mib: 512", "workspace_mib: true"), "workspace_mib: expected int"),
        (BASE.replace("workspace_mib: 512", "workspace_mib: 0"), "workspace_mib 0"),
        (BASE.replace("opt: 4", "opt: 40"), "1 <= min <= opt <= max"),
        (BASE.replace("min: 1", "min: 0"), "1 <= min <= opt <= max"),
        (BASE.replace("fp16", "bf16"), "precision 'bf16'"),
        (BASE.replace("fp16", "fp32") + "dla_core: 0\n", "the DLA runs fp16 or int8 only"),
        (BASE + "dla_core: -1\n", "dla_core -1"),
        (BASE + "builder_optimization_level: 6\n", "builder_optimization_level 6"),
        (BASE + "persons_max: 3\n", "persons_max: unknown key"),
        (BASE.replace("workspace_mib: 512\n", ""), "missing key(s) workspace_mib"),
        ("persons: {min: 1, max: 4}\nprecision: fp16\nworkspace_mib: 1\n", "missing key(s) persons.opt"),
        ("persons: [1, 4, 16]\nprecision: fp16\nworkspace_mib: 1\n", "persons: expected a mapping"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        ("persons: {min: 1\n", "not valid YAML"),
    ],
)
def test_bad_target_is_one_line_naming_the_key(tmp_path, text, message):
    path = write(tmp_path / "t.yaml", text)
    with pytest.raises(EmoedgeError, match=re.escape(message)) as caught:
        load_target(path)
    assert str(caught.value).startswith(f"target {path}: ") and "\n" not in str(caught.value)


def test_missing_target_file(tmp_path):
    with pytest.raises(EmoedgeError, match="file not found"):
        load_target(tmp_path / "nowhere.yaml")


def test_timing_cache_sits_beside_the_engine(tmp_path):
    engine = tmp_path / "engines" / "m.engine"
    assert target(timing_cache="t.cache").timing_cache_for(engine) == tmp_path / "engines" / "t.cache"
    assert target(timing_cache=str(tmp_path / "abs.cache")).timing_cache_for(engine) == tmp_path / "abs.cache"
    assert target(timing_cache="~/t.cache").timing_cache_for(engine) == Path.home() / "t.cache"
    assert target().timing_cache_for(engine) is None
    assert target().workspace_bytes == 4096 * 2**20


# --- TensorRT version and precision rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "strong"),
    [
        ("10.3.0", False),
        ("10.3.0.30", False),
        ("10.11.0.33", False),
        ("10.12.0.36", True),
        ("10.13.3.9", True),
        ("11.0.0", True),
        ("11.4.1.2", True),
    ],
)
def test_strong_typing_is_chosen_by_version(version, strong):
    assert strongly_typed_build(version) is strong


@pytest.mark.parametrize(("version", "message"), [("8.6.1", "too old"), ("10.2.0", "too old"), ("dev", "MAJOR")])
def test_unsupported_tensorrt_version(version, message):
    with pytest.raises(EmoedgeError, match=message):
        strongly_typed_build(version)


@pytest.mark.parametrize(
    ("wanted", "graph", "strong", "flags"),
    [
        ("fp16", "fp16", True, ()),
        ("int8", "int8", True, ()),
        ("fp32", "fp32", True, ()),
        ("fp16", "fp32", False, ("FP16",)),
        ("fp16", "fp16", False, ("FP16",)),
        ("int8", "int8", False, ("FP16", "INT8")),
        ("fp32", "fp32", False, ()),
    ],
)
def test_builder_flags(wanted, graph, strong, flags):
    assert builder_flags(target(wanted), graph, strongly_typed=strong, onnx_path="m.onnx", version="x") == flags


@pytest.mark.parametrize(
    ("wanted", "graph", "strong", "message"),
    [
        ("fp16", "fp32", True, "make the FP16 ONNX with `emoedge export precision`"),
        ("int8", "fp32", True, "make the INT8 Q/DQ ONNX with `emoedge export precision`"),
        ("int8", "fp16", False, "make the INT8 Q/DQ ONNX with `emoedge export precision`"),
        ("fp32", "fp16", True, "use the FP32 ONNX from `emoedge export onnx`"),
        ("fp32", "int8", False, "use the FP32 ONNX from `emoedge export onnx`"),
        ("fp16", "int8", False, "or use a target with precision int8"),
    ],
)
def test_precision_mismatch_says_which_command_makes_the_right_onnx(wanted, graph, strong, message):
    with pytest.raises(EmoedgeError) as caught:
        builder_flags(target(wanted), graph, strongly_typed=strong, onnx_path="dir/m.onnx", version="10.13.0")
    text = str(caught.value)
    assert message in text and f"target 't' asks {wanted} but m.onnx is a {graph} graph" in text
    assert ("TensorRT 10.13.0 builds strongly typed networks" in text) is strong


# --- trtexec command line -------------------------------------------------------------------------------------------


def test_trtexec_command_strongly_typed():
    desktop = load_target(REPO / "export" / "desktop-gpu.yaml")
    command = trtexec_command("m.onnx", "m.engine", desktop, CARD, strongly_typed=True, timing_cache="c.cache")
    assert command == (
        "trtexec --onnx=m.onnx --saveEngine=m.engine "
        "--minShapes=body:1x3x48x32,image:1x3x64x80,frame:1 --optShapes=body:4x3x48x32,image:4x3x64x80,frame:4 "
        "--maxShapes=body:32x3x48x32,image:4x3x64x80,frame:32 --memPoolSize=workspace:4096 --stronglyTyped "
        "--builderOptimizationLevel=3 --timingCacheFile=c.cache --skipInference"
    )


def test_trtexec_command_of_a_single_frame_onnx():
    command = trtexec_command("m.onnx", "m.engine", target(), CARD, strongly_typed=True, multi_frame=False)
    assert "--minShapes=body:1x3x48x32 " in command and "image:" not in command and "frame:" not in command


@pytest.mark.parametrize(
    ("name", "strong", "present", "absent"),
    [
        (
            "jetson-orin",
            False,
            ["--fp16", "--maxShapes=body:16x3x224x224,image:4x3x64x80,frame:16", "--memPoolSize=workspace:1024"],
            ["--stronglyTyped", "--int8", "--useDLACore=0"],
        ),
        (
            "jetson-orin-dla",
            False,
            ["--fp16", "--useDLACore=0", "--allowGPUFallback", "--minShapes=body:4x3x224x224,image:1x3x64x80,frame:4"],
            ["--stronglyTyped"],
        ),
        ("desktop-gpu-int8", False, ["--fp16", "--int8"], ["--stronglyTyped"]),
        ("desktop-gpu-int8", True, ["--stronglyTyped"], ["--fp16", "--int8"]),
    ],
)
def test_trtexec_command_flags(name, strong, present, absent):
    loaded = load_target(REPO / "export" / f"{name}.yaml")
    card = dataclasses.replace(CARD, body_size=(224, 224))
    args = shlex.split(trtexec_command("m.onnx", "m.engine", loaded, card, strongly_typed=strong))
    assert args[0] == "trtexec" and args[-1] == "--skipInference"
    assert all(flag in args for flag in present) and not any(flag in args for flag in absent)
    assert not any(a.startswith("--timingCacheFile") for a in args)


def test_trtexec_command_quotes_paths():
    command = trtexec_command(
        "my models/m.onnx", "out dir/m.engine", target(), CARD, strongly_typed=True, timing_cache="a b/c.cache"
    )
    args = shlex.split(command)
    assert "--onnx=my models/m.onnx" in args and "--saveEngine=out dir/m.engine" in args
    assert "--timingCacheFile=a b/c.cache" in args


# --- sidecar and compatibility --------------------------------------------------------------------------------------


def test_sidecar_round_trip(tmp_path):
    engine = write(tmp_path / "m.engine", b"\0" * 100)
    written = write_engine_info(engine, info())
    assert written == sidecar_path(engine) == tmp_path / "m.engine.json"
    assert read_engine_info(engine) == info()
    data = json.loads(written.read_text())
    assert data["card"] == CARD.to_dict() and data["tensorrt"] == "10.3.0" and data["target"] == "jetson-orin"
    assert data["gpu"] == {"name": "Orin", "compute_capability": [8, 7]}
    assert data["profile"] == {
        "image": [1, 3, 64, 80],
        "body": {"min": [1, 3, 48, 32], "opt": [4, 3, 48, 32], "max": [16, 3, 48, 32]},
        "frames": {"min": 1, "opt": 1, "max": 1},
    }
    del data["profile"]["frames"]  # as sidecars of single-frame engines were written before it
    del data["frame_input"]  # as every sidecar was written before it
    written.write_text(json.dumps(data))
    assert read_engine_info(engine) == info()
    assert data["precision"] == "fp16" and data["strongly_typed"] is False and data["build_seconds"] == 91.26


def test_missing_sidecar_says_how_to_rebuild(tmp_path):
    engine = write(tmp_path / "m.engine", b"\0" * 10)
    with pytest.raises(EmoedgeError, match=r"no sidecar m\.engine\.json .*`emoedge export engine`"):
        read_engine_info(engine)
    with pytest.raises(EmoedgeError, match="file not found"):
        read_engine_info(tmp_path / "other.engine")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not readable JSON"),
        ('{"format": "something-else"}', "not an emoedge engine sidecar"),
        ('["a"]', "not an emoedge engine sidecar"),
        ("drop:tensorrt", "missing key(s) tensorrt"),
        ("card:fusion=max", "fusion 'max'"),
    ],
)
def test_broken_sidecar_is_one_line(tmp_path, content, message):
    engine = write(tmp_path / "m.engine", b"\0" * 100)
    if ":" in content and not content.startswith("{"):
        data = info().to_dict()
        kind, _, what = content.partition(":")
        if kind == "drop":
            del data[what]
        else:
            key, _, value = what.partition("=")
            data["card"][key] = value
        content = json.dumps(data)
    write(sidecar_path(engine), content)
    with pytest.raises(EmoedgeError, match=re.escape(message)) as caught:
        read_engine_info(engine)
    assert str(sidecar_path(engine)) in str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("colour",), "red", "colour: unknown key"),
        (("gpu_name",), "Orin", "gpu_name: unknown key"),  # a field's name is not a key of the file
        (
            ("gpu", "vendor"),
            "NVIDIA",
            "gpu.vendor: unknown key (known: name, compute_capability, sm_count, memory_mib, integrated)",
        ),
        (("gpu",), "Orin", "gpu: expected a mapping, got 'Orin'"),
        (("gpu", "name"), 7, "gpu.name: expected str, got 7"),
        (("gpu", "compute_capability"), [8], "gpu.compute_capability: expected 2 values"),
        (("profile", "body", "max"), "16", "profile.body.max: expected a list, got '16'"),
        (("profile", "body", "max", 0), 1.5, "profile.body.max[0]: expected int, got 1.5"),
        (("profile", "frames", "opt"), None, "profile.frames.opt: expected int, got None"),
        (("profile", "image"), [1, 3], "profile.image: expected 4 values"),
        (("precision",), "fp8", "precision 'fp8': expected one of 'fp16', 'int8', 'fp32'"),
        (("allowed_precisions",), ["fp4"], "allowed_precisions[0] 'fp4': expected one of"),
        (("engine_bytes",), "100", "engine_bytes: expected int, got '100'"),
    ],
)
def test_a_bad_sidecar_value_is_named_as_the_json_spells_it(path, value, message):
    with pytest.raises(EmoedgeError) as caught:
        EngineInfo.from_dict(_edited(path, value))
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize("path", [("gpu",), ("profile", "body"), ("profile", "body", "opt"), ("format",)])
def test_a_missing_sidecar_key_is_named(path):
    with pytest.raises(EmoedgeError, match=re.escape(f"missing key(s) {'.'.join(path)}")):
        EngineInfo.from_dict(_edited(path))


def _edited(path: tuple, value: object = ...) -> dict:
    """`info()`'s sidecar JSON with the value at `path` replaced by `value` (deleted: `...`)."""
    data = info().to_dict()
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def test_sidecar_of_another_engine_is_refused(tmp_path):
    engine = write(tmp_path / "m.engine", b"\0" * 99)
    write_engine_info(engine, info(engine_bytes=100))
    with pytest.raises(EmoedgeError, match=r"describes another engine \(100 bytes, the file has 99\)"):
        read_engine_info(engine)


@pytest.mark.parametrize(
    ("version", "gpu", "capability", "message"),
    [
        ("10.3.0", "Orin", (8, 7), None),
        ("10.3.1", "Orin", (8, 7), "built with TensorRT 10.3.0, this machine has TensorRT 10.3.1"),
        (
            "10.3.0",
            "NVIDIA GeForce RTX 4090",
            (8, 9),
            "built for 'Orin' (compute capability 8.7), this GPU is 'NVIDIA GeForce RTX 4090' (8.9)",
        ),
        ("10.3.0", "Orin (nvgpu)", (8, 7), "this GPU is 'Orin (nvgpu)' (8.7)"),
        ("10.3.0", "Orin", (8, 6), "this GPU is 'Orin' (8.6)"),
    ],
)
def test_engine_from_another_tensorrt_or_gpu_is_refused(version, gpu, capability, message):
    def check():
        check_compatible(info(), "m.engine", tensorrt_version=version, gpu=CudaGpu(gpu, capability))

    if message is None:
        check()
        return
    with pytest.raises(EmoedgeError, match=re.escape(message)) as caught:
        check()
    assert "rebuild it on this machine with `emoedge export engine`" in str(caught.value)


# --- missing TensorRT or GPU, and checks before any build ----------------------------------------------------------


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_missing_tensorrt_is_one_line():
    with pytest.raises(EmoedgeError) as caught:
        import_tensorrt()
    assert str(caught.value) == INSTALL_HINT
    assert "pip install tensorrt" in INSTALL_HINT and "python3-libnvinfer" in INSTALL_HINT


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_missing_gpu_is_one_line():
    with pytest.raises(EmoedgeError, match="no CUDA GPU visible"):
        cuda_gpu()


def test_build_checks_target_and_onnx_before_tensorrt(tmp_path, exported):
    onnx_path = exported["full"][1].path
    bad = write(tmp_path / "bad.yaml", BASE + "persons_max: 3\n")
    with pytest.raises(EmoedgeError, match="persons_max: unknown key"):
        build_engine(onnx_path, bad, tmp_path / "m.engine")
    with pytest.raises(EmoedgeError, match="file not found"):
        build_engine(tmp_path / "none.onnx", REPO / "export" / "desktop-gpu.yaml", tmp_path / "m.engine")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(EmoedgeError, match="not produced by emoedge"):
        build_engine(foreign, REPO / "export" / "desktop-gpu.yaml", tmp_path / "m.engine")
    assert not list(tmp_path.glob("m.engine*"))


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_build_without_tensorrt_is_one_line(tmp_path, exported):
    with pytest.raises(EmoedgeError, match=re.escape(INSTALL_HINT)):
        build_engine(exported["full"][1].path, REPO / "export" / "jetson-orin.yaml", tmp_path / "m.engine")
    assert not list(tmp_path.iterdir())


# --- real builds: TensorRT and a CUDA GPU only ----------------------------------------------------------------------


@pytest.mark.gpu
def test_build_engine_writes_engine_sidecar_and_timing_cache(trt_gpu, exported, tmp_path):
    onnx_path = exported["full"][1].path
    small = Target(persons=Persons(1, 2, 4), precision="fp32", workspace_mib=512, name="small", timing_cache="t.cache")
    result = build_engine(onnx_path, small, tmp_path / "m.engine")
    assert result.path.stat().st_size > 0 and result.sidecar == tmp_path / "m.engine.json"
    assert result.timing_cache == tmp_path / "t.cache" and result.timing_cache.stat().st_size > 0
    got = read_engine_info(result.path)
    assert got == result.info and got.tensorrt == trt_gpu.__version__ and got.target == "small"
    assert got.persons == (1, 2, 4) and got.precision == "fp32" and got.card == read_onnx_card(onnx_path)
    assert got.gpu_name == torch.cuda.get_device_name() and got.compute_capability == torch.cuda.get_device_capability()
    assert got.strongly_typed is strongly_typed_build(trt_gpu.__version__)
    assert "--maxShapes=body:4x3x" in result.trtexec and "--timingCacheFile=" in result.trtexec
    assert result.summary.startswith(f"{result.path}: TensorRT {trt_gpu.__version__}")
    again = build_engine(onnx_path, small, tmp_path / "m2.engine")  # loads and saves the same cache
    assert again.timing_cache == result.timing_cache and read_engine_info(again.path).persons == (1, 2, 4)


@pytest.mark.gpu
def test_fp16_target_on_the_fp32_onnx(trt_gpu, exported, tmp_path):
    onnx_path = exported["full"][1].path
    fp16 = Target(persons=Persons(1, 2, 4), precision="fp16", workspace_mib=512, name="half")
    if strongly_typed_build(trt_gpu.__version__):
        with pytest.raises(EmoedgeError, match="make the FP16 ONNX with `emoedge export precision`"):
            build_engine(onnx_path, fp16, tmp_path / "m.engine")
        assert not (tmp_path / "m.engine").exists()
    else:
        assert build_engine(onnx_path, fp16, tmp_path / "m.engine").info.precision == "fp16"


def test_targets_name_the_streams_one_engine_call_takes():
    assert load_target(REPO / "export" / "desktop-gpu.yaml").frames == (1, 4, 4)
    assert load_target(REPO / "export" / "jetson-orin.yaml").frames == (1, 4, 4)
    assert load_target(REPO / "export" / "jetson-orin-dla.yaml").frames == (1, 1, 1)  # fixed shapes on the DLA
    assert target(streams=3, dla_core=0, persons=Persons(4, 4, 4)).frames == (3, 3, 3)
    with pytest.raises(EmoedgeError, match="streams 0: expected 1 to 64 frames per engine call"):
        target(streams=0)
