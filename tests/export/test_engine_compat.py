"""Which machine may run an engine, decided from its sidecar before TensorRT is touched: the GPU model (compute
capability and SM count; on a Jetson the Orin module, told apart by SM count and memory since every module is named
"Orin"; DLA cores) and the TensorRT version (a version-compatible engine also runs with later releases).

All of it is pure logic over sidecars and GPU descriptions, so it runs without TensorRT or a GPU. The GPU
descriptions below are what `cuda_gpu` reads from PyTorch on those GPUs (SM counts from NVIDIA's data sheets; a
Jetson's GPU sees its module's memory less carve-outs); whether TensorRT itself deserializes such engines is not
tested here.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
from engine_helpers import BODY_CARD, engine_info  # type: ignore[import-not-found]

from emoedge.errors import EmoedgeError
from emoedge.export.targets import Persons, Target, load_target
from emoedge.export.tensorrt import trtexec_command
from emoedge.formats.engine import (
    EngineInfo,
    check_compatible,
    check_dla_cores,
    read_engine_info,
    same_gpu_model,
    sidecar_path,
    write_engine_info,
)
from emoedge.formats.tensorrt import CudaGpu, engine_runs_on
from emoedge.resources import find

AGX_ORIN_64 = CudaGpu("Orin", (8, 7), 16, 62841, True)
AGX_ORIN_64_OTHER = CudaGpu("Orin", (8, 7), 16, 62800, True)  # another board: a slightly different carve-out
AGX_ORIN_32 = CudaGpu("Orin", (8, 7), 14, 30536, True)
ORIN_NX_16 = CudaGpu("Orin", (8, 7), 8, 15656, True)
ORIN_NANO_8 = CudaGpu("Orin", (8, 7), 8, 7620, True)
ORIN_NANO_4 = CudaGpu("Orin", (8, 7), 4, 3310, True)
A100_40 = CudaGpu("NVIDIA A100-SXM4-40GB", (8, 0), 108, 40326, False)
A100_80 = CudaGpu("NVIDIA A100-SXM4-80GB", (8, 0), 108, 81051, False)
RTX_4090 = CudaGpu("NVIDIA GeForce RTX 4090", (8, 9), 128, 24080, False)
RTX_4080 = CudaGpu("NVIDIA GeForce RTX 4080", (8, 9), 76, 15971, False)
RTX_3090 = CudaGpu("NVIDIA GeForce RTX 3090", (8, 6), 82, 24260, False)


def info_for(gpu: CudaGpu, **kwargs) -> EngineInfo:
    """A sidecar of an engine built on `gpu` (None fields: a sidecar written before they were recorded)."""
    return engine_info(
        BODY_CARD,
        gpu_name=gpu.name,
        compute_capability=gpu.capability,
        gpu_sm_count=gpu.sm_count,
        gpu_memory_mib=gpu.memory_mib,
        gpu_integrated=gpu.integrated,
        **kwargs,
    )


def check(info: EngineInfo, gpu: CudaGpu, version: str = "10.3.0") -> None:
    check_compatible(info, "m.engine", tensorrt_version=version, gpu=gpu)


# --- the GPU model --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "module"),
    [
        (AGX_ORIN_64, "AGX Orin 64GB"),
        (AGX_ORIN_32, "AGX Orin 32GB"),
        (ORIN_NX_16, "Orin NX 16GB"),
        (ORIN_NANO_8, "Orin NX 8GB or Orin Nano 8GB"),  # the same GPU and memory; only the DLA cores differ
        (ORIN_NANO_4, "Orin Nano 4GB"),
        (CudaGpu("Orin", (8, 7), 12, 30536, True), None),  # no such module: described by SMs and memory
        (A100_40, None),  # a discrete GPU is named by its name
    ],
)
def test_orin_modules_are_named_by_sm_count_and_memory(gpu, module):
    assert gpu.module == module


@pytest.mark.parametrize(
    ("built", "here", "same"),
    [
        (AGX_ORIN_64, AGX_ORIN_64_OTHER, True),
        (AGX_ORIN_64, ORIN_NANO_8, False),  # the fault: both are "Orin" 8.7
        (AGX_ORIN_64, AGX_ORIN_32, False),  # 16 vs 14 SMs
        (ORIN_NX_16, ORIN_NANO_8, False),  # 8 SMs each, but another module (16 vs 8 GB)
        (ORIN_NANO_8, ORIN_NANO_4, False),
        (A100_40, A100_80, True),  # memory variants of one chip: the same kernels
        (A100_80, A100_40, True),
        (RTX_4090, RTX_4080, False),  # same compute capability, other SM count
        (RTX_4090, RTX_3090, False),
        (CudaGpu("Orin", (8, 7)), ORIN_NANO_8, True),  # an older sidecar: name and capability decide, as before
        (CudaGpu("NVIDIA A100-SXM4-40GB", (8, 0)), A100_80, False),
    ],
)
def test_gpu_model_is_capability_and_sm_count_and_on_a_jetson_the_module(built, here, same):
    assert same_gpu_model(built, here) is same


@pytest.mark.parametrize(
    ("built", "here", "message"),
    [
        (
            AGX_ORIN_64,
            ORIN_NANO_8,
            "built for 'Orin' (AGX Orin 64GB: 16 SMs, compute capability 8.7), this GPU is 'Orin' "
            "(Orin NX 8GB or Orin Nano 8GB: 8 SMs, 8.7)",
        ),
        (ORIN_NX_16, ORIN_NANO_8, "built for 'Orin' (Orin NX 16GB: 8 SMs, compute capability 8.7)"),
        (
            RTX_4090,
            RTX_4080,
            "built for 'NVIDIA GeForce RTX 4090' (128 SMs, compute capability 8.9), this GPU is "
            "'NVIDIA GeForce RTX 4080' (76 SMs, 8.9)",
        ),
        (
            CudaGpu("NVIDIA A100-SXM4-40GB", (8, 0)),
            A100_80,
            "built for 'NVIDIA A100-SXM4-40GB' (compute capability 8.0), this GPU is 'NVIDIA A100-SXM4-80GB' "
            "(108 SMs, 8.0)",
        ),
    ],
)
def test_another_gpu_model_is_refused_in_one_line_naming_both(built, here, message):
    with pytest.raises(EmoedgeError) as caught:
        check(info_for(built), here)
    text = str(caught.value)
    assert (
        message in text
        and "\n" not in text
        and text.endswith("rebuild it on this machine with `emoedge export engine`")
    )


def test_memory_variant_of_a_desktop_gpu_runs_the_engine():
    check(info_for(A100_40), A100_80)
    check(info_for(AGX_ORIN_64), AGX_ORIN_64_OTHER)


@pytest.mark.parametrize(
    ("dla_core", "cores", "refused"), [(0, 0, True), (1, 1, True), (0, 1, False), (None, 0, False)]
)
def test_dla_engine_needs_its_core_here(dla_core, cores, refused):
    """An Orin NX 8GB DLA engine on an Orin Nano 8GB: the same GPU, but no DLA core to run on."""
    engine = info_for(ORIN_NANO_8, dla_core=dla_core, persons=(4, 4, 4))
    if not refused:
        check_dla_cores(engine, "m.engine", cores)
        return
    with pytest.raises(EmoedgeError, match=rf"runs on DLA core {dla_core}, this machine has {cores} DLA core\(s\)"):
        check_dla_cores(engine, "m.engine", cores)


# --- the sidecar records the GPU model and version compatibility ---------------------------------------------------


def test_sidecar_records_sm_count_memory_integrated_and_version_compatibility(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 100)
    built = info_for(AGX_ORIN_64, version_compatible=True)
    write_engine_info(engine, built)
    data = json.loads(sidecar_path(engine).read_text())
    assert data["gpu"] == {
        "name": "Orin",
        "compute_capability": [8, 7],
        "sm_count": 16,
        "memory_mib": 62841,
        "integrated": True,
    }
    assert data["version_compatible"] is True
    assert read_engine_info(engine) == built and read_engine_info(engine).gpu == AGX_ORIN_64
    for key in ("sm_count", "memory_mib", "integrated"):  # as sidecars were written before them
        del data["gpu"][key]
    del data["version_compatible"]
    sidecar_path(engine).write_text(json.dumps(data))
    old = read_engine_info(engine)
    assert old.gpu == CudaGpu("Orin", (8, 7)) and old.version_compatible is False


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("sm_count", "16", "gpu.sm_count: expected int, got '16'"),
        ("memory_mib", 1.5, "gpu.memory_mib: expected int, got 1.5"),
        ("integrated", 1, "gpu.integrated: expected bool"),
    ],
)
def test_a_bad_gpu_value_is_named_as_the_json_spells_it(key, value, message):
    data = info_for(AGX_ORIN_64).to_dict()
    data["gpu"][key] = value
    with pytest.raises(EmoedgeError) as caught:
        EngineInfo.from_dict(data)
    assert str(caught.value).startswith(message), str(caught.value)


# --- version-compatible engines -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "runtime", "compatible", "runs"),
    [
        ("10.3.0", "10.3.0", False, True),
        ("10.3.0", "10.8.0", False, False),  # an ordinary engine: its own version only
        ("10.3.0", "10.8.0", True, True),
        ("10.3.0.26", "10.3.0.30", True, True),
        ("10.8.0", "10.3.0", True, False),  # never an older runtime
        ("10.3.0", "11.0.0", True, True),  # TensorRT's support matrix: 10.x version-compatible engines run on 11.x
        ("10.3.0", "12.0.0", True, False),
        ("11.1.0", "11.4.1", True, True),
        ("11.1.0", "12.0.0", True, False),
    ],
)
def test_version_compatible_engines_run_on_later_releases(built, runtime, compatible, runs):
    assert engine_runs_on(built, runtime, version_compatible=compatible) is runs


@pytest.mark.parametrize(
    ("compatible", "version", "message"),
    [
        (True, "10.8.0", None),
        (True, "11.0.0", None),
        (True, "10.2.0", "built with TensorRT 10.3.0, this machine has TensorRT 10.2.0; a version-compatible engine"),
        (True, "12.0.0", "this machine has TensorRT 12.0.0; a version-compatible engine runs only with the same"),
        (False, "10.8.0", "this machine has TensorRT 10.8.0; engines run only with the version that built them"),
    ],
)
def test_check_compatible_accepts_a_later_tensorrt_for_version_compatible_engines_only(compatible, version, message):
    built = info_for(ORIN_NANO_8, tensorrt="10.3.0", version_compatible=compatible)
    if message is None:
        check(built, ORIN_NANO_8, version)
        return
    with pytest.raises(EmoedgeError, match=re.escape(message)):
        check(built, ORIN_NANO_8, version)


def test_version_compatible_target_option_is_read_and_validated(tmp_path):
    base = "persons: {min: 1, opt: 4, max: 16}\nprecision: fp16\nworkspace_mib: 512\n"
    path = tmp_path / "t.yaml"
    path.write_text(base + "version_compatible: true\n")
    assert load_target(path).version_compatible is True
    assert load_target(path, ["version_compatible=false"]).version_compatible is False
    for name in ("desktop-gpu", "desktop-gpu-int8", "jetson-orin", "jetson-orin-dla"):
        assert load_target(find("target", name)).version_compatible is False
    path.write_text(base + "version_compatible: 'yes'\n")
    with pytest.raises(EmoedgeError, match="version_compatible: expected bool"):
        load_target(path)
    with pytest.raises(EmoedgeError, match="version_compatible 1: expected true or false"):
        Target(Persons(1, 4, 16), "fp16", 512, version_compatible=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("compatible", [True, False])
def test_trtexec_line_asks_for_a_version_compatible_engine(compatible):
    target = Target(Persons(1, 4, 16), "fp16", 512, version_compatible=compatible)
    args = shlex.split(trtexec_command("m.onnx", "m.engine", target, BODY_CARD, strongly_typed=False))
    assert ("--versionCompatible" in args) is compatible
    assert args[-1] == "--skipInference"
