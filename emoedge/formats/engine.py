"""TensorRT engine sidecars (`<engine>.json`): what makes an engine file self-describing.

Why a sidecar: an engine runs only with the TensorRT version and on the GPU model that built it; the sidecar records
both, with the model card, so the runtime refuses a foreign engine with one line instead of a deserialisation
failure, and knows the categories, thresholds and preprocessing without the ONNX file. Reading it needs no TensorRT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from emoedge import __version__, settings
from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.fileio import atomic_write_text

SIDECAR_FORMAT = "emoedge-engine-1"
REBUILD = "rebuild it on this machine with `emoedge export engine`"


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar: the card and what the engine was built with, for, and from."""

    card: ModelCard
    tensorrt: str
    gpu_name: str
    compute_capability: tuple[int, int]
    target: str
    persons: tuple[int, int, int]  # min, opt, max of the optimisation profile over N
    precision: str
    strongly_typed: bool
    dla_core: int | None
    engine_bytes: int
    build_seconds: float
    built_at: str
    onnx: str
    emoedge: str = __version__
    # What the build let TensorRT compute in: a strongly typed build the graph's own types; a weakly typed one
    # (TensorRT 10.3) fp32 plus what the builder flags allowed, whatever the target asked.
    allowed_precisions: tuple[str, ...] = ()
    frames: tuple[int, int, int] = (1, 1, 1)  # min, opt, max of the profile over F (engines with a `frame` input)
    # Whether the engine takes the `frame` input (None: a sidecar written before this was recorded).
    frame_input: bool | None = None

    @property
    def has_frame(self) -> bool:
        """Whether the engine takes `frame`; for older sidecars, guessed from the profile (F > 1 needs it)."""
        return self.frames[-1] > 1 if self.frame_input is None else self.frame_input

    def to_dict(self) -> dict[str, Any]:
        h, w = self.card.body_size
        body = dict(zip(("min", "opt", "max"), ([n, 3, h, w] for n in self.persons)))
        frames = dict(zip(("min", "opt", "max"), self.frames))
        return {
            "format": SIDECAR_FORMAT,
            "card": self.card.to_dict(),
            "tensorrt": self.tensorrt,
            "gpu": {"name": self.gpu_name, "compute_capability": list(self.compute_capability)},
            "target": self.target,
            "profile": {"image": [1, 3, *self.card.image_size], "body": body, "frames": frames},
            "precision": self.precision,
            "strongly_typed": self.strongly_typed,
            "dla_core": self.dla_core,
            "engine_bytes": self.engine_bytes,
            "build_seconds": self.build_seconds,
            "built_at": self.built_at,
            "onnx": self.onnx,
            "emoedge": self.emoedge,
            "allowed_precisions": list(self.allowed_precisions),
            "frame_input": self.frame_input,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineInfo:
        """Rebuild from `to_dict` output, checked key by key (one EmoedgeError naming the key)."""
        stored = settings.from_dict(_Sidecar, data)
        return cls(
            card=stored.card, tensorrt=stored.tensorrt, gpu_name=stored.gpu.name,
            compute_capability=stored.gpu.compute_capability, target=stored.target,
            persons=(stored.profile.body.min[0], stored.profile.body.opt[0], stored.profile.body.max[0]),
            precision=stored.precision, strongly_typed=stored.strongly_typed, dla_core=stored.dla_core,
            engine_bytes=stored.engine_bytes, build_seconds=stored.build_seconds, built_at=stored.built_at,
            onnx=stored.onnx, emoedge=stored.emoedge, allowed_precisions=stored.allowed_precisions,
            frames=(stored.profile.frames.min, stored.profile.frames.opt, stored.profile.frames.max),
            frame_input=stored.frame_input,
        )  # fmt: skip


# The sidecar's JSON layout, for reading it through the settings mechanism (EngineInfo.to_dict writes it).
@dataclass(frozen=True)
class _Gpu:
    name: str
    compute_capability: tuple[int, int]


@dataclass(frozen=True)
class _BodyProfile:
    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]


@dataclass(frozen=True)
class _FramesProfile:
    min: int = 1
    opt: int = 1
    max: int = 1


@dataclass(frozen=True)
class _Profile:
    image: tuple[int, int, int, int]
    body: _BodyProfile
    frames: _FramesProfile = _FramesProfile()  # absent from sidecars of single-frame engines before it


@dataclass(frozen=True)
class _Sidecar:
    format: Literal["emoedge-engine-1"]
    card: ModelCard
    tensorrt: str
    gpu: _Gpu
    target: str
    profile: _Profile
    precision: Literal["fp16", "int8", "fp32"]
    strongly_typed: bool
    dla_core: int | None
    engine_bytes: int
    build_seconds: float
    built_at: str
    onnx: str
    emoedge: str
    allowed_precisions: tuple[Literal["int8", "fp16", "fp32"], ...] = ()  # absent from sidecars before it
    frame_input: bool | None = None  # absent from sidecars before it


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_engine_info(engine: str | Path, info: EngineInfo) -> Path:
    return atomic_write_text(sidecar_path(engine), json.dumps(info.to_dict(), indent=2) + "\n")


def read_engine_info(engine: str | Path) -> EngineInfo:
    """The sidecar of an engine, checked to describe this very file; anything wrong is one EmoedgeError line."""
    engine, path = Path(engine), sidecar_path(engine)
    if not engine.is_file():
        raise EmoedgeError(f"engine {engine}: file not found")
    if not path.is_file():
        raise EmoedgeError(
            f"engine {engine}: no sidecar {path.name} beside it (the model card and what the engine was built with); "
            f"{REBUILD}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EmoedgeError(f"engine sidecar {path}: not readable JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise EmoedgeError(f"engine sidecar {path}: not an emoedge engine sidecar (expected format {SIDECAR_FORMAT!r})")
    try:
        info = EngineInfo.from_dict(data)
    except EmoedgeError as exc:
        raise EmoedgeError(f"engine sidecar {path}: {exc}") from None
    size = engine.stat().st_size
    if size != info.engine_bytes:
        raise EmoedgeError(
            f"engine {engine}: its sidecar describes another engine ({info.engine_bytes} bytes, the file has {size}); "
            f"{REBUILD}"
        )
    return info


def check_compatible(
    info: EngineInfo, engine: str | Path, *, tensorrt_version: str, gpu_name: str, compute_capability: tuple[int, int]
) -> None:
    """Refuse an engine built with another TensorRT version or for another GPU model, naming which."""
    if info.tensorrt != tensorrt_version:
        raise EmoedgeError(
            f"engine {engine} was built with TensorRT {info.tensorrt}, this machine has TensorRT {tensorrt_version}; "
            f"engines run only with the version that built them: {REBUILD}"
        )
    built, here = tuple(info.compute_capability), tuple(compute_capability)
    if built != here or info.gpu_name != gpu_name:
        raise EmoedgeError(
            f"engine {engine} was built for {info.gpu_name!r} (compute capability {built[0]}.{built[1]}), this GPU is "
            f"{gpu_name!r} ({here[0]}.{here[1]}); engines run only on the GPU model that built them: {REBUILD}"
        )
