"""Training recipes: YAML files turned into typed dataclasses.

Why: a recipe is the "what" of a training run and travels inside every checkpoint; unknown keys and wrong types
are rejected with the key named, so a typo never silently trains the wrong model. A recipe may name a `base:`
recipe (relative path) whose values it overrides, which keeps the ablation recipes a few lines each.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emoedge import settings
from emoedge.card import IMAGENET_MEAN, IMAGENET_STD
from emoedge.categories import BRANCHES
from emoedge.devices import TORCH_KINDS, parse_device
from emoedge.errors import EmoedgeError

LOSS_MODES = ("count", "probability", "fixed")
# Seeds are mixed with the epoch and rank into torch generator seeds, which must fit in 64 bits.
MAX_SEED = 2**32 - 1


@dataclass
class ModelConfig:
    """The three-branch network (SPEC §2). `weights` per branch: None, "imagenet" or a local file."""

    branches: list[str] = field(default_factory=lambda: list(BRANCHES))
    backbones: dict[str, str] = field(default_factory=lambda: {b: "resnet50" for b in BRANCHES})
    weights: dict[str, str | None] = field(default_factory=lambda: {"body": "imagenet"})
    fusion: Literal["attention", "concat"] = "attention"
    fusion_dim: int | None = None
    attention_hidden: int = 256
    dropout: float = 0.5
    vad: bool = False

    def __post_init__(self) -> None:
        if "body" not in self.branches or any(b not in BRANCHES for b in self.branches):
            raise EmoedgeError(
                f"model.branches {self.branches}: must include 'body' and be a subset of {list(BRANCHES)}"
            )
        if len(set(self.branches)) != len(self.branches):
            raise EmoedgeError(f"model.branches {self.branches}: a branch is listed twice")
        missing = [b for b in self.branches if b not in self.backbones]
        if missing:
            raise EmoedgeError(f"model.backbones: no backbone named for branch(es) {missing}")
        _in_unit("model.dropout", self.dropout)
        _at_least("model.attention_hidden", self.attention_hidden, 1)
        if self.fusion_dim is not None:
            _at_least("model.fusion_dim", self.fusion_dim, 1)


@dataclass
class DataConfig:
    """Where the data is and how inputs are prepared; sizes are [height, width]."""

    root: str | None = None
    format: Literal["auto", "mat", "csv"] = "auto"
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    body_size: list[int] = field(default_factory=lambda: [224, 224])
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    augment: bool = True
    workers: int = 4

    def __post_init__(self) -> None:
        for key in ("image_size", "body_size"):
            value = getattr(self, key)
            if len(value) != 2 or min(value) < 16:
                raise EmoedgeError(f"data.{key} {value}: expected [height, width], each >= 16")
        for key in ("mean", "std"):
            if len(getattr(self, key)) != 3:
                raise EmoedgeError(f"data.{key} {getattr(self, key)}: expected 3 values (RGB)")
        if min(self.std) <= 0:
            raise EmoedgeError(f"data.std {self.std}: expected 3 finite numbers > 0")
        _at_least("data.workers", self.workers, 0)


@dataclass
class LossConfig:
    """Weighting of the discrete loss and the coefficients of eq. 6 (+ an optional VAD term)."""

    mode: Literal["count", "probability", "fixed"] = "count"
    c: float = 1.2
    alpha: float = 1.0  # body
    beta: float = 1.0  # scene gist
    gamma: float = 1.0  # place
    delta: float = 1.0  # fusion
    vad: float = 0.0  # coefficient of the VAD smooth-L1 term (0: not trained)

    def __post_init__(self) -> None:
        if self.mode not in LOSS_MODES:
            raise EmoedgeError(f"loss.mode {self.mode!r}: expected one of {', '.join(LOSS_MODES)}")
        _positive("loss.c", self.c)
        if self.mode != "count" and self.c < 1:
            raise EmoedgeError(f"loss.c {self.c}: mode {self.mode!r} needs c >= 1 so that ln(c + p) > 0")
        terms = ("alpha", "beta", "gamma", "delta", "vad")
        for key in terms:
            _non_negative(f"loss.{key}", getattr(self, key))
        if not any(getattr(self, key) > 0 for key in terms):
            raise EmoedgeError(f"loss.{', loss.'.join(terms)}: all 0, nothing would be trained; expected one > 0")


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
        for key in ("epochs", "batch_size", "accumulate"):
            _at_least(f"optim.{key}", getattr(self, key), 1)
        _positive("optim.lr", self.lr)
        _in_unit("optim.momentum", self.momentum)
        _non_negative("optim.weight_decay", self.weight_decay)
        _positive("optim.gamma", self.gamma)
        if any(m < 1 for m in self.milestones) or sorted(set(self.milestones)) != list(self.milestones):
            raise EmoedgeError(f"optim.milestones {self.milestones}: expected increasing epochs >= 1")
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

    def __post_init__(self) -> None:
        _at_least("run.seed", self.seed, 0, MAX_SEED)
        parse_device(self.device, "run.device", kinds=TORCH_KINDS)  # whether this machine has it: when training starts


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


# Range checks where a value enters (a recipe file, a key=value override, a checkpoint's recipe): each names the
# key, the value and what was expected, so `optim.lr=.nan` stops before any data loads, not after an epoch.
def _at_least(key: str, value: int, low: int, high: int | None = None) -> None:
    if value < low or (high is not None and value > high):
        expected = f">= {low}" if high is None else f"from {low} to {high}"
        raise EmoedgeError(f"{key} {value}: expected an integer {expected}")


def _positive(key: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise EmoedgeError(f"{key} {value}: expected a finite number > 0")


def _non_negative(key: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise EmoedgeError(f"{key} {value}: expected a finite number >= 0")


def _in_unit(key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:  # False for NaN too
        raise EmoedgeError(f"{key} {value}: expected a number in [0, 1)")


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file (following `base:`), apply overrides, validate."""
    return settings.load(Recipe, path, "recipe", overrides or [])


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Rebuild the recipe stored inside a checkpoint."""
    try:
        return settings.from_dict(Recipe, data)
    except EmoedgeError as exc:
        raise EmoedgeError(f"recipe: {exc}") from None
