"""Training recipes: YAML files turned into typed dataclasses.

Why: a recipe is the "what" of a training run and travels inside every checkpoint; unknown keys and wrong types
are rejected with the key named, so a typo never silently trains the wrong model. A recipe may name a `base:`
recipe (relative path) whose values it overrides, which keeps the ablation recipes a few lines each.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from emoedge.card import IMAGENET_MEAN, IMAGENET_STD
from emoedge.categories import BRANCHES
from emoedge.errors import EmoedgeError
from emoedge.training.loss import LossConfig


@dataclass
class ModelConfig:
    """The three-branch network (SPEC §2). `weights` per branch: None, "imagenet" or a local file."""

    branches: list[str] = field(default_factory=lambda: list(BRANCHES))
    backbones: dict[str, str] = field(default_factory=lambda: {b: "resnet50" for b in BRANCHES})
    weights: dict[str, Union[str, None]] = field(default_factory=lambda: {"body": "imagenet"})
    fusion: str = "attention"
    fusion_dim: Union[int, None] = None
    attention_hidden: int = 256
    dropout: float = 0.5
    vad: bool = False

    def __post_init__(self) -> None:
        if "body" not in self.branches or any(b not in BRANCHES for b in self.branches):
            raise EmoedgeError(f"model.branches {self.branches}: must include 'body' and be a subset of {list(BRANCHES)}")
        if len(set(self.branches)) != len(self.branches):
            raise EmoedgeError(f"model.branches {self.branches}: a branch is listed twice")
        missing = [b for b in self.branches if b not in self.backbones]
        if missing:
            raise EmoedgeError(f"model.backbones: no backbone named for branch(es) {missing}")
        if self.fusion not in ("attention", "concat"):
            raise EmoedgeError(f"model.fusion {self.fusion!r}: expected 'attention' or 'concat'")
        if not 0.0 <= self.dropout < 1.0:
            raise EmoedgeError(f"model.dropout {self.dropout}: expected a value in [0, 1)")


@dataclass
class DataConfig:
    """Where the data is and how inputs are prepared; sizes are [height, width]."""

    root: Union[str, None] = None
    format: str = "auto"
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    body_size: list[int] = field(default_factory=lambda: [224, 224])
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    augment: bool = True
    workers: int = 4

    def __post_init__(self) -> None:
        if self.format not in ("auto", "mat", "csv"):
            raise EmoedgeError(f"data.format {self.format!r}: expected 'auto', 'mat' or 'csv'")
        for key in ("image_size", "body_size"):
            value = getattr(self, key)
            if len(value) != 2 or min(value) < 16:
                raise EmoedgeError(f"data.{key} {value}: expected [height, width], each >= 16")
        for key in ("mean", "std"):
            if len(getattr(self, key)) != 3:
                raise EmoedgeError(f"data.{key} {getattr(self, key)}: expected 3 values (RGB)")


@dataclass
class OptimConfig:
    """SGD with a multi-step schedule (paper §4.2). `batch_size` is per optimiser step, over all processes."""

    epochs: int = 60
    batch_size: int = 256
    accumulate: int = 1
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [20, 40])
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.accumulate < 1:
            raise EmoedgeError("optim: epochs, batch_size and accumulate must be >= 1")
        if self.batch_size % self.accumulate:
            raise EmoedgeError(
                f"optim.batch_size {self.batch_size} is not divisible by optim.accumulate {self.accumulate}"
            )


@dataclass
class RunConfig:
    """Run-level switches: seed, mixed precision on CUDA, device."""

    seed: int = 0
    amp: bool = True
    device: str = "auto"


@dataclass
class Recipe:
    name: str = "recipe"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types with the key named."""
    if not isinstance(data, dict):
        raise EmoedgeError(f"{where or 'recipe'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise EmoedgeError(f"{_key(where, unknown[0])}: unknown key (known: {', '.join(sorted(names))})")
    values = {name: _convert(hints[name], value, _key(where, name)) for name, value in data.items()}
    return cls(**values)


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _convert(hint: Any, value: Any, key: str) -> Any:
    """Check `value` against the type hint `hint` (dataclass, Union/Optional, list, dict or scalar)."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        return _convert(candidates[0], value, key)
    if origin is list:
        if not isinstance(value, list):
            raise EmoedgeError(f"{key}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise EmoedgeError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise EmoedgeError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EmoedgeError(f"recipe {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise EmoedgeError(f"recipe {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise EmoedgeError(f"recipe {path}: expected a mapping at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; lists and scalars in `over` replace those in `base`."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resolve(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise EmoedgeError(f"recipe {path}: 'base' chain loops back to itself")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise EmoedgeError(f"recipe {path}: base: expected a file path, got {base!r}")
    return _merge(_resolve(path.parent / base, (*seen, path)), data)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings (values parsed as YAML scalars/lists) to a recipe mapping."""
    out = _merge({}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise EmoedgeError(f"override {item!r}: expected key=value, e.g. optim.epochs=10")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise EmoedgeError(f"override {item!r}: value is not valid YAML") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return out


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file (following `base:`), apply overrides, validate."""
    path = Path(path)
    data = apply_overrides(_resolve(path), overrides or [])
    data.setdefault("name", path.stem)
    try:
        return from_dict(Recipe, data)
    except EmoedgeError as exc:
        raise EmoedgeError(f"recipe {path}: {exc}") from None


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Rebuild the recipe stored inside a checkpoint."""
    return from_dict(Recipe, data)
