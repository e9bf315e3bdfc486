"""Tiny trained-looking checkpoints (random weights, the sample recipe's sizes) for tests in any folder."""

from __future__ import annotations

from pathlib import Path

import torch
from cli_helpers import REPO  # type: ignore[import-not-found]

from emoedge.config import load_recipe
from emoedge.formats.checkpoint import save_checkpoint
from emoedge.model.net import build_model, card_for

# name -> (branches, fusion, vad)
MODELS = {
    "full": (["body", "place", "scene"], "attention", True),
    "body_place": (["body", "place"], "attention", False),
    "concat": (["body", "scene"], "concat", True),
}


def write_checkpoint(
    path: Path, branches: list[str], *, fusion: str = "attention", vad: bool = True, seed: int = 0
) -> Path:
    """A checkpoint of the sample recipe with random weights, spread-out BatchNorm statistics and thresholds.

    Why spread them: with fresh BatchNorm statistics folding is an identity and the scores all sit near 0.5, which
    would hide export and precision errors.
    """
    recipe = load_recipe(
        REPO / "train" / "sample.yaml",
        [f"model.branches=[{','.join(branches)}]", f"model.fusion={fusion}", f"model.vad={str(vad).lower()}"],
    )
    torch.manual_seed(seed)
    net = build_model(recipe, pretrained=False)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    for head in (net.head[-1], *(h[-1] for h in net.branch_heads.values())):
        head.weight.data.mul_(25.0)  # logits of a few units, as after training
    card = card_for(recipe).with_thresholds(torch.rand(26).tolist())
    state = {"epoch": 0, "model": net.state_dict(), "recipe": recipe.to_dict(), "card": card.to_dict()}
    return save_checkpoint(path, state)
