"""Engine targets: YAML files (export/*.yaml) describing the machine a TensorRT engine is built for.

Why a file per target: a desktop GPU and a Jetson Orin need different profile maxima, workspace limits and
accelerators (DLA), and the choice must be reviewable and repeatable; like recipes, unknown keys and wrong types are
errors naming the key, so a typo never silently builds an engine for the wrong shapes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from emoedge.config import from_dict
from emoedge.errors import EmoedgeError

PRECISIONS = ("fp16", "int8", "fp32")


@dataclass(frozen=True)
class Persons:
    """The optimisation profile over N, the persons of one frame (the first dimension of input `body`)."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise EmoedgeError(
                f"persons: expected 1 <= min <= opt <= max, got min {self.min}, opt {self.opt}, max {self.max}"
            )


@dataclass(frozen=True)
class Target:
    """What to build: profile, precision, workspace and accelerator. `timing_cache` is relative to the engine."""

    persons: Persons
    precision: str
    workspace_mib: int
    name: str = "target"
    description: str = ""
    dla_core: int | None = None
    gpu_fallback: bool = True
    timing_cache: str | None = None
    builder_optimization_level: int = 3
    notes: str = ""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EmoedgeError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.workspace_mib < 1:
            raise EmoedgeError(f"workspace_mib {self.workspace_mib}: expected a positive number of MiB")
        if not 0 <= self.builder_optimization_level <= 5:
            raise EmoedgeError(f"builder_optimization_level {self.builder_optimization_level}: expected 0..5")
        if self.dla_core is not None:
            if self.dla_core < 0:
                raise EmoedgeError(f"dla_core {self.dla_core}: expected null or a core index >= 0")
            if self.precision == "fp32":
                raise EmoedgeError("dla_core: the DLA runs fp16 or int8 only; set precision fp16 or int8")

    @property
    def workspace_bytes(self) -> int:
        return self.workspace_mib << 20

    def timing_cache_for(self, engine: Path) -> Path | None:
        """The timing-cache file for an engine: beside it, since a cache belongs to one GPU and TensorRT version."""
        if self.timing_cache is None:
            return None
        path = Path(self.timing_cache).expanduser()
        return path if path.is_absolute() else Path(engine).parent / path


def load_target(path: str | Path) -> Target:
    """Read and validate a target file; its name defaults to the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"target {path}: file not found")
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EmoedgeError(f"target {path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    if not isinstance(data, dict):
        raise EmoedgeError(f"target {path}: expected a mapping at the top level")
    data.setdefault("name", path.stem)
    missing = _missing(Target, data, "")
    if isinstance(data.get("persons"), dict):
        missing += _missing(Persons, data["persons"], "persons.")
    if missing:
        raise EmoedgeError(f"target {path}: missing key(s) {', '.join(missing)}")
    try:
        return from_dict(Target, data)
    except EmoedgeError as exc:
        raise EmoedgeError(f"target {path}: {exc}") from None


def _missing(cls: type, data: dict[str, Any], prefix: str) -> list[str]:
    """Keys without a default that `data` lacks (from_dict leaves those to the constructor's TypeError)."""
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    return [prefix + key for key in required if key not in data]
