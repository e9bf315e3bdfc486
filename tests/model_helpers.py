"""Tiny trained-looking checkpoints (random weights, the sample recipe's sizes) for tests in any folder."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from cli_helpers import REPO  # type: ignore[import-not-found]

from emoedge.config import load_recipe
from emoedge.export.onnx import example_inputs
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


def legacy_onnx(checkpoint: Path, out: Path) -> Path:
    """An ONNX file as emoedge exported them before the `frame` input: image [1,3,H,W], body [N,3,h,w]."""
    from emoedge.formats.checkpoint import load_trained_model
    from emoedge.formats.onnx import CARD_KEY, FORMAT, FORMAT_KEY
    from emoedge.model.deploy import DeployModel

    net, card, _ = load_trained_model(checkpoint)
    deploy = DeployModel(net).eval()

    class SingleFrame(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.deploy = deploy

        def forward(self, image, body):
            return self.deploy(image, body, torch.zeros(body.shape[0], dtype=torch.int64))

    image, body = example_inputs(card, 2)
    names = list(deploy.output_names)
    torch.onnx.export(
        SingleFrame().eval(), (image, body), str(out), dynamo=False, input_names=["image", "body"], output_names=names,
        dynamic_axes={"body": {0: "persons"}, **{n: {0: "persons"} for n in names}},
    )  # fmt: skip
    model = onnx.load(str(out))
    onnx.helper.set_model_props(model, {CARD_KEY: card.to_json(), FORMAT_KEY: FORMAT})
    onnx.save(model, str(out))
    return out
