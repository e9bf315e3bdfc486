"""Engine targets: YAML files (export/*.yaml) describing the machine a TensorRT engine is built for.

Why a file per target: a desktop GPU and a Jetson Orin need different profile maxima, workspace limits and
accelerators (DLA), and the choice must be reviewable and repeatable; like recipes, unknown keys and wrong types are
errors naming the key, so a typo never silently builds an engine for the wrong shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emoedge import settings
from emoedge.errors import EmoedgeError

PRECISIONS = ("fp16", "int8", "fp32")
MAX_STREAMS = 64
Precision = Literal["fp16", "int8", "fp32"]


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
    precision: Precision
    workspace_mib: int
    streams: int = 1  # frames one engine call takes (streams of a multi-camera run); the DLA's F is fixed to it
    name: str = "target"
    description: str = ""
    dla_core: int | None = None
    gpu_fallback: bool = True
    timing_cache: str | None = None
    builder_optimization_level: int = 3
    # BuilderFlag.VERSION_COMPATIBLE: later TensorRT releases of the same major (10.x engines also 11.x) run the
    # engine through the lean runtime it carries, at some cost in speed; the GPU model must still be the same.
    version_compatible: bool = False
    notes: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.streams <= MAX_STREAMS:
            raise EmoedgeError(f"streams {self.streams}: expected 1 to {MAX_STREAMS} frames per engine call")
        if self.workspace_mib < 1:
            raise EmoedgeError(f"workspace_mib {self.workspace_mib}: expected a positive number of MiB")
        if not 0 <= self.builder_optimization_level <= 5:
            raise EmoedgeError(f"builder_optimization_level {self.builder_optimization_level}: expected 0..5")
        if not isinstance(self.version_compatible, bool):
            raise EmoedgeError(f"version_compatible {self.version_compatible!r}: expected true or false")
        if self.dla_core is not None:
            if self.dla_core < 0:
                raise EmoedgeError(f"dla_core {self.dla_core}: expected null or a core index >= 0")
            if self.precision == "fp32":
                raise EmoedgeError("dla_core: the DLA runs fp16 or int8 only; set precision fp16 or int8")
            if self.persons.min != self.persons.max:
                p = self.persons
                raise EmoedgeError(
                    f"dla_core {self.dla_core}: the DLA has no dynamic shapes, so persons must be fixed (min = opt = "
                    f"max, e.g. {{min: 4, opt: 4, max: 4}}), got min {p.min}, opt {p.opt}, max {p.max}; the "
                    "TensorRT backend pads frames with fewer persons and splits frames with more"
                )

    @property
    def frames(self) -> tuple[int, int, int]:
        """The profile over F (min, opt, max): 1..streams, tuned for all streams; fixed on the DLA."""
        return (self.streams if self.dla_core is not None else 1, self.streams, self.streams)

    @property
    def workspace_bytes(self) -> int:
        return self.workspace_mib << 20

    def timing_cache_for(self, engine: Path) -> Path | None:
        """The timing-cache file for an engine: beside it, since a cache belongs to one GPU and TensorRT version."""
        if self.timing_cache is None:
            return None
        path = Path(self.timing_cache).expanduser()
        return path if path.is_absolute() else Path(engine).parent / path


def load_target(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Target:
    """Read and validate a target file (following `base:`, then `key=value` overrides); its name defaults to the
    file's stem."""
    return settings.load(Target, path, "target", overrides)
