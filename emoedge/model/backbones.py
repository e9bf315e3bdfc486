"""Backbone registry: named variants, one factory each for classifiers and feature extractors, weight loading.

Why one loader for every weight source: torchvision's ImageNet weights, CSAILVision's Places365 files
(`{"state_dict": {"module.conv1.weight": ...}}`, 365 classes, Python-2 pickles), other classification
checkpoints (`{"model": ...}`, raw state dicts) and emoedge's own pretraining output all go through
`load_state`, which strips `module.` prefixes, drops or keeps the classifier, and refuses anything else that does
not fit with the file and the first offending keys named, instead of half-loading a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emoedge.errors import EmoedgeError
from emoedge.fileio import safe_torch_load

log = logging.getLogger(__name__)


class TinyNet(nn.Module):
    """A small plain CNN (stride-2 conv-BN-ReLU stages, global average pool, `fc`) for tests and CPU recipes."""

    def __init__(self, num_classes: int = 1000, widths: tuple[int, ...] = (16, 32, 64, 96)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            conv = nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False)
            layers += [conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@dataclass(frozen=True)
class Variant:
    """A registered backbone: how to build it, its feature size, its classifier attribute, its ImageNet weights."""

    build: Callable[..., nn.Module]  # build(num_classes=...) -> classification model
    dim: int
    classifier: str  # attribute holding the classifier ("fc" or "classifier")
    imagenet: str | None  # torchvision weights enum, e.g. "ResNet50_Weights.IMAGENET1K_V2"
    feature_map: str = "features"  # attribute giving the last spatial feature map (Grad-CAM's layer)


def _torchvision(fn_name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, fn_name)(weights=None, num_classes=num_classes)

    return build


_VARIANTS: dict[str, Variant] = {
    "resnet18": Variant(_torchvision("resnet18"), 512, "fc", "ResNet18_Weights.IMAGENET1K_V1", "layer4"),
    "resnet34": Variant(_torchvision("resnet34"), 512, "fc", "ResNet34_Weights.IMAGENET1K_V1", "layer4"),
    "resnet50": Variant(_torchvision("resnet50"), 2048, "fc", "ResNet50_Weights.IMAGENET1K_V2", "layer4"),
    "mobilenet_v3_small": Variant(
        _torchvision("mobilenet_v3_small"), 576, "classifier", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    ),
    "mobilenet_v3_large": Variant(
        _torchvision("mobilenet_v3_large"), 960, "classifier", "MobileNet_V3_Large_Weights.IMAGENET1K_V2"
    ),
    "tiny": Variant(TinyNet, 96, "fc", None),
}


def list_backbones() -> list[str]:
    """Names of the registered backbones."""
    return sorted(_VARIANTS)


def get_variant(name: str) -> Variant:
    """The registry entry of `name`; unknown names raise EmoedgeError listing the known ones."""
    if name not in _VARIANTS:
        raise EmoedgeError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}")
    return _VARIANTS[name]


def create_classifier(name: str, num_classes: int, weights: str | None = None) -> nn.Module:
    """The full classification model of backbone `name` with a `num_classes`-way classifier.

    `weights`: None/"none" (random), "imagenet" (torchvision, needs the network) or a local file; a file's
    classifier is kept when its shape fits `num_classes`, otherwise it is initialised at random (logged).
    """
    variant = get_variant(name)
    model = variant.build(num_classes=num_classes)
    _apply_weights(model, name, variant, weights, keep_classifier=True)
    return model


def feature_map_layer(encoder: nn.Module, name: str) -> nn.Module:
    """The module of an encoder built by `create_backbone(name)` whose output is its last spatial feature map."""
    return getattr(encoder, get_variant(name).feature_map)


def create_backbone(name: str, weights: str | None = None) -> tuple[nn.Module, int]:
    """Feature extractor of backbone `name`: forward([B,3,H,W]) -> [B,D]; returns (module, D)."""
    variant = get_variant(name)
    model = variant.build(num_classes=1000)
    setattr(model, variant.classifier, nn.Identity())
    _apply_weights(model, name, variant, weights, keep_classifier=False)
    return model, variant.dim


def _apply_weights(
    model: nn.Module, name: str, variant: Variant, weights: str | None, *, keep_classifier: bool
) -> None:
    if weights is None or str(weights).lower() == "none":
        return
    if str(weights).lower() == "imagenet":
        state, source = _imagenet_state(name, variant), f"torchvision ImageNet weights of {name}"
    else:
        path = Path(weights).expanduser()
        state, source = read_state_dict(path), str(path)
    load_state(
        model, state, source=source, target=name, classifier_attr=variant.classifier, keep_classifier=keep_classifier
    )


def _imagenet_state(name: str, variant: Variant) -> dict[str, torch.Tensor]:
    if variant.imagenet is None:
        raise EmoedgeError(f"backbone {name!r} has no ImageNet weights; use weights: none or a local file")
    import torchvision

    enum = torchvision.models.get_weight(variant.imagenet)
    try:
        return enum.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash is a RuntimeError
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise EmoedgeError(
            f"ImageNet weights for {name} could not be fetched from {enum.url} ({reason}); "
            "give a local weights file path instead"
        ) from None


def load_weights(
    module: nn.Module, path: Path, *, classifier_attr: str, keep_classifier: bool, target: str = "this model"
) -> None:
    """Load a weights file (any form `read_state_dict` accepts) into `module`; see `load_state`."""
    state = read_state_dict(path)
    load_state(
        module, state, source=str(path), target=target, classifier_attr=classifier_attr, keep_classifier=keep_classifier
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: a raw state dict, or one under "state_dict" or "model"; `module.` stripped."""
    obj: Any = safe_torch_load(path, what="weights")
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EmoedgeError(
            f"weights {path}: no state dict found (expected a mapping of tensors, or one under 'state_dict' or 'model')"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_state(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    target: str = "this model",
    classifier_attr: str,
    keep_classifier: bool,
) -> None:
    """Load `state` into `module` strictly, except for the classifier and for missing BatchNorm counters.

    The file's classifier keys are used only when `keep_classifier` and they fit the module's classifier exactly;
    otherwise the module keeps its own (freshly initialised) classifier, or none when it is an nn.Identity.
    Checkpoints older than PyTorch 0.4.1 (Places365) have no `num_batches_tracked`: the module's own are kept.
    """
    prefix = classifier_attr + "."
    own = module.state_dict()
    own_head = {k: v for k, v in own.items() if k.startswith(prefix)}
    file_head = {k: v for k, v in state.items() if k.startswith(prefix)}
    merged = {k: v for k, v in state.items() if not k.startswith(prefix)}
    head_fits = file_head.keys() == own_head.keys() and all(v.shape == own_head[k].shape for k, v in file_head.items())
    if keep_classifier and head_fits:
        merged.update(file_head)
    else:
        if keep_classifier:
            shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in file_head.items() if k.endswith("weight"))
            log.info("%s: classifier (%s) does not fit %s; initialised at random", source, shapes or "none", target)
        merged.update(own_head)
    for key, value in own.items():
        if key.endswith("num_batches_tracked"):
            merged.setdefault(key, value)

    missing = [k for k in own if k not in merged]
    unexpected = [k for k in merged if k not in own]
    mismatched = [
        f"{k} {tuple(merged[k].shape)} in the file vs {tuple(v.shape)} in the model"
        for k, v in own.items()
        if k in merged and merged[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        found = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": mismatched}
        problems = [
            f"{label} ({len(keys)}): {', '.join(keys[:3])}{', …' if len(keys) > 3 else ''}"
            for label, keys in found.items()
            if keys
        ]
        raise EmoedgeError(f"weights {source} do not fit {target} (another architecture?): {'; '.join(problems)}")
    module.load_state_dict(merged, strict=True)
