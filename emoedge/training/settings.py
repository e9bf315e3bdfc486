"""Backbone pretraining settings, apart from the training code so that reading them (the CLI's defaults, its
key=value overrides) does not import torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from emoedge.config import MAX_SEED
from emoedge.devices import TORCH_KINDS, parse_device
from emoedge.errors import EmoedgeError

Branch = Literal["place", "scene"]
BRANCHES: tuple[str, ...] = get_args(Branch)


@dataclass(frozen=True)
class PretrainSettings:
    """How to pretrain (`emoedge pretrain` options and key=value keys); checked where they enter.

    `weights` initialises the model (None, "imagenet" or a file); `device` "auto" picks CUDA when available;
    `val_fraction` of the images is held out to print the accuracy after each epoch.
    """

    arch: str = "resnet50"
    branch: Branch = "place"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    image_size: int = 224
    weights: str | None = None
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        from emoedge.model.backbones import get_variant  # here: the registry imports torch

        get_variant(self.arch)  # an unknown name is one EmoedgeError listing the known ones
        parse_device(self.device, kinds=TORCH_KINDS)
        checks = (
            ("branch", self.branch in BRANCHES, f"one of {', '.join(BRANCHES)}"),
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("lr", _is_number(self.lr) and self.lr > 0, "a finite number > 0"),
            ("image_size", _is_int(self.image_size) and self.image_size >= 16, "an integer >= 16"),
            ("workers", _is_int(self.workers) and self.workers >= 0, "an integer >= 0"),
            ("seed", _is_int(self.seed) and 0 <= self.seed <= MAX_SEED, f"an integer from 0 to {MAX_SEED}"),
            ("val_fraction", _is_number(self.val_fraction) and 0 <= self.val_fraction < 1, "a number in [0, 1)"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise EmoedgeError(f"{name} {getattr(self, name)!r}: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
