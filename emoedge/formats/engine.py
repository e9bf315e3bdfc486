"""TensorRT engine sidecars (`<engine>.json`): what makes an engine file self-describing.

Why a sidecar: an engine runs only with the TensorRT version and on the GPU model that built it; the sidecar records
both, with the model card, so the runtime refuses a foreign engine with one line instead of a deserialisation
failure, and knows the categories, thresholds and preprocessing without the ONNX file. Reading it needs no TensorRT.

A GPU model is its compute capability and SM count (what an engine's kernels are chosen for), not its name: memory
variants of one desktop GPU run each other's engines, while every Jetson Orin module is named "Orin" and is told apart
by SM count and memory (and DLA cores, checked against the runtime). A version-compatible engine also runs with later
TensorRT releases (`engine_runs_on`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from emoedge import __version__, settings
from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.fileio import atomic_write_text
from emoedge.formats.tensorrt import CudaGpu, engine_runs_on

SIDECAR_FORMAT = "emoedge-engine-1"
REBUILD = "rebuild it on this machine with `emoedge export engine`"
Precision = Literal["fp16", "int8", "fp32"]
_Shape = tuple[int, int, int, int]
_LEVELS = ("min", "opt", "max")  # of an optimisation profile
# The fields that the sidecar's JSON nests (under "gpu" and "profile"); every other field is a top-level key.
_GPU = {  # field -> its key under "gpu"
    "gpu_name": "name",
    "compute_capability": "compute_capability",
    "gpu_sm_count": "sm_count",
    "gpu_memory_mib": "memory_mib",
    "gpu_integrated": "integrated",
}
_GPU_OPTIONAL = ("sm_count", "memory_mib", "integrated")  # absent from sidecars written before them
_NESTED = (*_GPU, "persons", "frames")


@dataclass(frozen=True)
class EngineInfo:
    """The sidecar: the card and what the engine was built with, for, and from.

    On disk (`to_dict`, format emoedge-engine-1) the GPU and the optimisation profile are nested as TensorRT's tools
    show them: "gpu": {name, compute_capability, sm_count, memory_mib, integrated}, "profile": {image, body: {min,
    opt, max: [N, 3, h, w]}, frames}.
    """

    card: ModelCard
    tensorrt: str
    gpu_name: str
    compute_capability: tuple[int, int]
    target: str
    persons: tuple[int, int, int]  # min, opt, max of the optimisation profile over N
    precision: Precision
    strongly_typed: bool
    dla_core: int | None
    engine_bytes: int
    build_seconds: float
    built_at: str
    onnx: str
    emoedge: str = __version__
    # What the build let TensorRT compute in: a strongly typed build the graph's own types; a weakly typed one
    # (TensorRT 10.3) fp32 plus what the builder flags allowed, whatever the target asked.
    allowed_precisions: tuple[Precision, ...] = ()  # absent from sidecars written before it
    frames: tuple[int, int, int] = (1, 1, 1)  # min, opt, max of the profile over F (absent: single-frame engines)
    # Whether the engine takes the `frame` input (None: a sidecar written before this was recorded).
    frame_input: bool | None = None
    # What tells GPU models apart beyond name and compute capability (None: a sidecar written before they were).
    gpu_sm_count: int | None = None
    gpu_memory_mib: int | None = None
    gpu_integrated: bool | None = None
    version_compatible: bool = False  # built with BuilderFlag.VERSION_COMPATIBLE: later TensorRT releases run it

    @property
    def gpu(self) -> CudaGpu:
        """The GPU the engine was built on."""
        return CudaGpu(
            self.gpu_name, self.compute_capability, self.gpu_sm_count, self.gpu_memory_mib, self.gpu_integrated
        )

    @property
    def has_frame(self) -> bool:
        """Whether the engine takes `frame`; for older sidecars, guessed from the profile (F > 1 needs it)."""
        return self.frames[-1] > 1 if self.frame_input is None else self.frame_input

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's JSON: the fields (`settings.to_dict`), the GPU and the profile nested."""
        data = settings.to_dict(self)
        h, w = self.card.body_size
        gpu = {key: value for field, key in _GPU.items() if (value := data.pop(field)) is not None}
        profile = {
            "image": [1, 3, *self.card.image_size],
            "body": {level: [n, 3, h, w] for level, n in zip(_LEVELS, data.pop("persons"))},
            "frames": dict(zip(_LEVELS, data.pop("frames"))),
        }
        return {"format": SIDECAR_FORMAT, **data, "gpu": gpu, "profile": profile}

    @classmethod
    def from_dict(cls, data: Any) -> EngineInfo:
        """Rebuild from `to_dict` output through `settings`: an unknown, missing or mistyped key is one line naming
        it as the JSON spells it ("gpu.name", "profile.body.max")."""
        own = [f.name for f in dataclasses.fields(cls) if f.name not in _NESTED]
        data = _keys(data, "", ("format", "gpu", "profile", *own), optional=own)
        if (written := data.pop("format")) != SIDECAR_FORMAT:
            raise EmoedgeError(f"format {written!r}: expected {SIDECAR_FORMAT!r}")
        gpu = _keys(data.pop("gpu"), "gpu", tuple(_GPU.values()), optional=_GPU_OPTIONAL)
        profile = data.pop("profile")
        profile = _keys(profile, "profile", ("image", "body", "frames"), optional=("frames",))
        settings.convert(_Shape, profile["image"], "profile.image")  # the card's image size: checked, not kept
        body = _keys(profile["body"], "profile.body", _LEVELS)
        frames = _keys(profile.get("frames", dict.fromkeys(_LEVELS, 1)), "profile.frames", _LEVELS)
        hints = typing.get_type_hints(cls)
        nested = {
            **{
                field: settings.convert(hints[field], gpu[key], f"gpu.{key}")
                for field, key in _GPU.items()
                if key in gpu
            },
            "persons": [settings.convert(_Shape, body[level], f"profile.body.{level}")[0] for level in _LEVELS],
            "frames": [settings.convert(int, frames[level], f"profile.frames.{level}") for level in _LEVELS],
        }
        return settings.from_dict(cls, {**data, **nested})


def _keys(data: Any, where: str, keys: tuple[str, ...], optional: Iterable[str] = ()) -> dict[str, Any]:
    """`data` as a mapping of `keys` (those in `optional` may be absent) and no others, else one line naming the key
    as `settings.from_dict` names a dataclass's: the sidecar's nested parts are checked as its fields are."""
    data = settings.convert(dict[str, Any], data, where or "sidecar")
    prefix = f"{where}." if where else ""
    unknown = [key for key in data if key not in keys]
    if unknown:
        raise EmoedgeError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(keys)})")
    missing = [f"{prefix}{key}" for key in keys if key not in data and key not in optional]
    if missing:
        raise EmoedgeError(f"missing key(s) {', '.join(missing)}")
    return data


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
    info: EngineInfo,
    engine: str | Path,
    *,
    tensorrt_version: str,
    gpu: CudaGpu,
) -> None:
    """Refuse an engine built for another TensorRT version or another GPU model (`gpu`: this one, as `cuda_gpu`
    describes it; what is None there is unknown), naming both."""
    if not engine_runs_on(info.tensorrt, tensorrt_version, version_compatible=info.version_compatible):
        rule = (
            "a version-compatible engine runs only with the same or a later TensorRT release of its major version "
            "(10.x engines also with 11.x)"
            if info.version_compatible
            else "engines run only with the version that built them (unless built with version_compatible: true)"
        )
        raise EmoedgeError(
            f"engine {engine} was built with TensorRT {info.tensorrt}, this machine has TensorRT {tensorrt_version}; "
            f"{rule}: {REBUILD}"
        )
    if not same_gpu_model(info.gpu, gpu):
        raise EmoedgeError(
            f"engine {engine} was built for {info.gpu.describe()}, this GPU is {gpu.describe(short=True)}; engines "
            f"run only on the GPU model that built them: {REBUILD}"
        )


def same_gpu_model(built: CudaGpu, here: CudaGpu) -> bool:
    """Whether `here` runs engines built on `built`: the same compute capability and SM count (what the kernels were
    chosen for), on a Jetson also the same memory class (the module); a desktop GPU's name may differ (memory
    variants of one chip). Without an SM count (older sidecars) the name decides, as it did then."""
    if tuple(built.capability) != tuple(here.capability):
        return False
    if built.sm_count is None or here.sm_count is None:
        return built.name == here.name
    if built.sm_count != here.sm_count:
        return False
    if built.integrated or here.integrated:
        return built.integrated == here.integrated and built.memory_class_gib == here.memory_class_gib
    return True


def check_dla_cores(info: EngineInfo, engine: str | Path, cores: int) -> None:
    """Refuse a DLA engine on a machine without its DLA core (an Orin Nano has none, an Orin NX 8GB one)."""
    if info.dla_core is not None and info.dla_core >= cores:
        raise EmoedgeError(
            f"engine {engine} runs on DLA core {info.dla_core}, this machine has {cores} DLA core(s); build a GPU "
            f"engine (a target with dla_core null) or {REBUILD}"
        )
