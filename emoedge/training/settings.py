"""Backbone pretraining settings, apart from the training code so that reading them (the CLI's defaults, its
key=value overrides) does not import torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from emoedge.config import MAX_SEED
from emoedge.devices import TORCH_KINDS, parse_device, spelled
from emoedge.errors import EmoedgeError
from emoedge.settings import option, validate

Branch = Literal["place", "scene"]
BRANCHES: tuple[str, ...] = get_args(Branch)


@dataclass(frozen=True)
class PretrainSettings:
    """How to pretrain (`emoedge pretrain` options and key=value keys); checked where they enter.

    `weights` initialises the model (None, "imagenet" or a file); `device` "auto" picks CUDA when available;
    `val_fraction` of the images is held out to print the accuracy after each epoch.
    """

    arch: str = option(
        "resnet50", "a registered backbone: resnet18/34/50, mobilenet_v3_small/large, tiny (an unknown name lists them)"
    )
    branch: Branch = option("place", "the branch the backbone is for", required=True)
    epochs: int = option(10, "passes over the training images", low=1)
    batch_size: int = option(64, "images per step", low=1)
    lr: float = option(0.01, "initial SGD learning rate (cosine schedule)")  # > 0: checked in __post_init__
    image_size: int = option(224, "training crop size in pixels", low=16)
    weights: str | None = option(None, "initial weights: imagenet or a local file (default: random)")
    workers: int = option(2, "data-loading processes (0: in this process)", low=0)
    seed: int = option(0, "random seed of the split, initialisation and order", low=0, high=MAX_SEED)
    device: str = option("auto", f"{spelled(TORCH_KINDS)} (auto: CUDA when available)")
    val_fraction: float = option(0.1, "images held out for val accuracy", low=0, high=1, high_open=True)

    def __post_init__(self) -> None:
        from emoedge.model.backbones import get_variant  # here: the registry imports torch

        validate(self)
        if self.lr <= 0:  # a range open at its low end, which option() does not declare
            raise EmoedgeError(f"lr {self.lr!r}: expected a finite number > 0")
        get_variant(self.arch)  # an unknown name is one EmoedgeError listing the known ones
        parse_device(self.device, kinds=TORCH_KINDS)
