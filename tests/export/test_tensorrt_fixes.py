"""The TensorRT hardening that can be checked without TensorRT: what happens before it is imported, and emoedge's
own logic around it (person slicing for fixed-N/DLA engines, the timing-cache fallback, the one process logger).

Where a stand-in object takes TensorRT's place below, it stands for nothing but the few calls that logic makes, and
only that logic is under test; the real builds and runs are in test_export_tensorrt.py / test_backend_tensorrt.py
and need TensorRT and a CUDA GPU (EMOEDGE_REQUIRE_GPU=1 makes their skips failures).
"""

from __future__ import annotations

import enum
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
from engine_helpers import BODY_CARD, engine_info  # type: ignore[import-not-found]

from emoedge.backends.base import person_batches
from emoedge.errors import EmoedgeError
from emoedge.export.precision import to_int8
from emoedge.export.targets import Persons, Target
from emoedge.export.tensorrt import build_engine, use_timing_cache
from emoedge.formats.engine import EngineInfo, read_engine_info, sidecar_path, write_engine_info
from emoedge.formats.onnx import load_onnx, stored_types
from emoedge.formats.tensorrt import LogRecord, claim_logging, tensorrt_logger
from emoedge.resources import find

CARD = BODY_CARD


def info(**kwargs) -> EngineInfo:
    return engine_info(CARD, **kwargs)


@pytest.fixture(scope="module")
def cpu_int8(exported, sample_root, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    for image in sorted((sample_root / "emotic").rglob("*.jpg"))[:4]:
        shutil.copy(image, folder / image.name)
    onnx_path = exported["body_place"][1].path
    return to_int8(onnx_path, onnx_path.with_name("bp-int8-cpu.onnx"), target="cpu", calib=folder).path


def test_cpu_int8_onnx_is_refused_before_tensorrt_is_imported(cpu_int8, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it would fail: the refusal must come first
    with pytest.raises(EmoedgeError, match=r"placed for ONNX Runtime on CPUs .* --int8-target tensorrt"):
        build_engine(cpu_int8, find("target", "desktop-gpu-int8"), tmp_path / "m.engine")
    assert not list(tmp_path.iterdir())


def test_stored_types_name_what_a_strongly_typed_build_may_use(exported, cpu_int8):
    assert stored_types(load_onnx(exported["full"][1].path)) == ("fp32",)
    assert stored_types(load_onnx(cpu_int8)) == ("int8", "fp32")


@pytest.mark.parametrize(
    "persons, low, high, batches",
    [
        (0, 1, 16, []),
        (3, 1, 16, [(0, 3, 3)]),
        (16, 1, 16, [(0, 16, 16)]),
        (33, 1, 16, [(0, 16, 16), (16, 32, 16), (32, 33, 1)]),
        (1, 4, 4, [(0, 1, 4)]),  # a DLA engine with N fixed at 4: padded
        (6, 4, 4, [(0, 4, 4), (4, 6, 4)]),  # split, the last slice padded
        (5, 2, 3, [(0, 3, 3), (3, 5, 2)]),
    ],
)
def test_person_batches_cover_every_person_within_the_profile(persons, low, high, batches):
    got = person_batches(persons, low, high)
    assert got == batches
    assert sum(stop - start for start, stop, _ in got) == persons
    assert all(low <= size <= high and size >= stop - start for start, stop, size in got)


def test_dla_targets_fix_the_person_count():
    dla = Target(Persons(4, 4, 4), "fp16", 512, dla_core=0)
    assert dla.persons.min == dla.persons.max == 4
    with pytest.raises(EmoedgeError, match=r"dla_core 0: the DLA has no dynamic shapes.*got min 1, opt 4, max 16"):
        Target(Persons(1, 4, 16), "fp16", 512, dla_core=0)
    from emoedge.export.targets import load_target

    shipped = load_target(find("target", "jetson-orin-dla"))
    assert shipped.dla_core == 0 and shipped.persons == Persons(4, 4, 4)


class _Config:
    """Stands in for IBuilderConfig's three timing-cache calls: a blob it cannot parse gives None (or raises)."""

    def __init__(self, parse: str = "ok", accept: bool = True) -> None:
        self.parse, self.accept, self.cache = parse, accept, None

    def create_timing_cache(self, data: bytes):
        if data and self.parse == "none":
            return None
        if data and self.parse == "raise":
            raise RuntimeError("bad blob")
        return ("cache", bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        assert ignore_mismatch is False
        ok = self.accept or cache == ("cache", b"")
        if ok:
            self.cache = cache
        return ok


@pytest.mark.parametrize(
    "content, config, used, warned",
    [
        (None, _Config(), b"", False),  # no file yet: an empty cache, silently
        (b"good", _Config(), b"good", False),
        (b"corrupt", _Config(parse="none"), b"", True),  # create_timing_cache returned None
        (b"corrupt", _Config(parse="raise"), b"", True),
        (b"foreign", _Config(accept=False), b"", True),  # another GPU or TensorRT version
    ],
)
def test_a_bad_timing_cache_is_rebuilt_from_empty_with_one_warning(tmp_path, recwarn, content, config, used, warned):
    path = tmp_path / "t.timing-cache"
    if content is not None:
        path.write_bytes(content)
    use_timing_cache(config, path)
    assert config.cache == ("cache", used)
    messages = [str(w.message) for w in recwarn.list]
    assert len(messages) == int(warned), messages
    if warned:
        assert str(path) in messages[0] and "starting a new one" in messages[0]


def _tensorrt_stand_in() -> types.SimpleNamespace:
    """The logging surface of the tensorrt module: ILogger with its Severity, and a Runtime taking a logger."""

    class ILogger:
        Severity = enum.Enum("Severity", "INTERNAL_ERROR ERROR WARNING INFO VERBOSE")

        def __init__(self) -> None:
            pass

    runtimes = []
    return types.SimpleNamespace(ILogger=ILogger, Runtime=lambda logger: runtimes.append(logger) or logger,
                                 runtimes=runtimes)  # fmt: skip


def test_one_logger_per_process_claimed_once_and_errors_kept_per_call():
    trt = _tensorrt_stand_in()
    logger = tensorrt_logger(trt)
    assert tensorrt_logger(trt) is logger  # every engine, builder and runtime gets this one
    claim_logging(trt)
    claim_logging(trt)
    assert trt.runtimes == [logger]  # claimed once, with emoedge's logger
    mark = logger.record.mark()
    assert logger.record.error_since(mark) == "no reason given"
    logger.log(trt.ILogger.Severity.ERROR, "first\n failure")
    later = logger.record.mark()
    logger.log(trt.ILogger.Severity.INTERNAL_ERROR, "second failure")
    assert logger.record.error_since(mark) == "second failure"
    assert logger.record.error_since(later) == "second failure"
    assert logger.record.error_since(logger.record.mark(), "none") == "none"
    with pytest.warns(UserWarning, match="TensorRT: careful"):
        logger.log(trt.ILogger.Severity.WARNING, "careful")


def test_log_record_is_bounded():
    record = LogRecord(keep=3)
    for i in range(10):
        record.add(f"e{i}")
    assert record.mark() == 10 and record.error_since(0) == "e9"


def test_sidecar_says_what_the_build_allowed(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 100)
    allowed = info(allowed_precisions=("fp16", "fp32"))
    write_engine_info(engine, allowed)
    assert json.loads(sidecar_path(engine).read_text())["allowed_precisions"] == ["fp16", "fp32"]
    assert read_engine_info(engine) == allowed
    data = json.loads(sidecar_path(engine).read_text())
    del data["allowed_precisions"]  # sidecars written before the field still load
    sidecar_path(engine).write_text(json.dumps(data))
    assert read_engine_info(engine).allowed_precisions == ()
    assert isinstance(read_engine_info(engine), EngineInfo) and read_engine_info(engine).card == CARD
