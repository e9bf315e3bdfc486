"""Checkpoints with random weights, for benchmarks and tests: a recipe's network made to look trained, saved the way
training saves checkpoints (recipe and card included), so that every later stage reads it as a trained one.

Why "look trained": with fresh BatchNorm statistics, folding them at export is an identity, and with fresh heads every
score sits near 0.5; both would hide export and precision errors and leave the thresholds nothing to separate. Speed
does not depend on the weights, so benchmarks measure on these too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoedge.config import Recipe, load_recipe, recipe_from_dict
from emoedge.formats.checkpoint import save_checkpoint
from emoedge.model.net import build_model, card_for
from emoedge.resources import find

THRESHOLDS = (0.2, 0.7)  # the card's thresholds, spread evenly over this range in category order
LOGIT_SCALE = 25.0  # heads' weights times this: logits of a few units, as after training


def random_recipe(recipe: str | Path | Recipe = "sample", **overrides: Any) -> Recipe:
    """`recipe` (a shipped recipe's name, a recipe file or a Recipe) with no pretrained weights to load, and
    `overrides` of its model section (e.g. `branches=["body", "place"], fusion="concat", vad=False`)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(find("recipe", recipe))
    data = recipe.to_dict()
    data["model"] = {**data["model"], "weights": {}, **overrides}
    return recipe_from_dict(data)


def random_checkpoint(out: Path, recipe: str | Path | Recipe = "sample", *, seed: int = 0, **overrides: Any) -> Path:
    """Write the checkpoint `out` of `random_recipe(recipe, **overrides)`'s network with random weights (`seed`),
    spread-out BatchNorm statistics and scales, heads scaled to logits of a few units, and thresholds spread over
    THRESHOLDS; torch's global random state is left as it was."""
    recipe = random_recipe(recipe, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(recipe, pretrained=False)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
    for head in (net.head[-1], *(h[-1] for h in net.branch_heads.values())):
        head.weight.data.mul_(LOGIT_SCALE)
    card = card_for(recipe)
    card = card.with_thresholds(np.linspace(*THRESHOLDS, len(card.categories)).tolist())
    state = {"epoch": 0, "model": net.state_dict(), "recipe": recipe.to_dict(), "card": card.to_dict()}
    return save_checkpoint(out, state)
