"""Training checkpoints: what they hold, written atomically, read with `weights_only=True`.

A checkpoint is plain data and tensors only — the recipe and the model card as dicts — so loading one never runs
code, and it is enough on its own to rebuild the model (no recipe file needed at eval or export time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from emoedge.card import ModelCard
from emoedge.config import Recipe, recipe_from_dict
from emoedge.errors import EmoedgeError
from emoedge.fileio import atomic_torch_save, safe_torch_load

FORMAT = "emoedge-checkpoint"
REQUIRED_KEYS = ("format", "epoch", "model", "recipe", "card")


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` (which must hold REQUIRED_KEYS except `format`) atomically."""
    return atomic_torch_save({"format": FORMAT, **state}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint file; every failure is one EmoedgeError line naming the file."""
    data = safe_torch_load(path, what="checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EmoedgeError(f"checkpoint {path}: not an emoedge training checkpoint (no format={FORMAT!r} entry)")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise EmoedgeError(f"checkpoint {path}: missing entries {missing}")
    return data


def read_checkpoint_card(path: str | Path) -> ModelCard:
    """The model card a checkpoint carries, naming the file if it does not parse."""
    try:
        return ModelCard.from_dict(read_checkpoint(path)["card"])
    except EmoedgeError as exc:
        raise EmoedgeError(f"checkpoint {path}: {exc}") from None


def load_trained_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, ModelCard, Recipe]:
    """Rebuild the network of a checkpoint in eval mode, with its card and recipe."""
    from emoedge.model.net import build_model

    data = read_checkpoint(path)
    try:
        recipe = recipe_from_dict(data["recipe"])
        card = ModelCard.from_dict(data["card"])
    except EmoedgeError as exc:
        raise EmoedgeError(f"checkpoint {path}: {exc}") from None
    model = build_model(recipe, pretrained=False)
    try:
        result = model.load_state_dict(data["model"], strict=False)
    except RuntimeError as exc:  # tensor shape mismatches
        raise EmoedgeError(
            f"checkpoint {path}: weights do not fit its recipe's model ({str(exc).splitlines()[-1].strip()[:160]})"
        ) from None
    bad = list(result.missing_keys) + list(result.unexpected_keys)
    if bad:
        raise EmoedgeError(f"checkpoint {path}: weights do not fit its recipe's model (e.g. {bad[:3]})")
    return model.to(device).eval(), card, recipe
