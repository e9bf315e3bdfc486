from pathlib import Path

import pytest

from emoedge.config import load_recipe
from emoedge.errors import EmoedgeError

RECIPES = sorted((Path(__file__).resolve().parent.parent / "train").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert "body" in recipe.model.branches


@pytest.mark.parametrize(
    "name, branches, fusion",
    [
        ("ablation-bp-concat", ["body", "place"], "concat"),
        ("ablation-be-concat", ["body", "scene"], "concat"),
        ("ablation-bep-concat", ["body", "place", "scene"], "concat"),
        ("ablation-bep-attention", ["body", "place", "scene"], "attention"),
    ],
)
def test_ablations_express_the_papers_table2(name, branches, fusion):
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "train" / f"{name}.yaml")
    assert recipe.model.branches == branches and recipe.model.fusion == fusion
    assert recipe.optim.epochs == 60 and recipe.optim.lr == 0.01  # inherited from paper.yaml


def test_overrides_apply_with_types_checked(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("base: " + str(RECIPES[0].parent / "sample.yaml") + "\nname: mine\n")
    recipe = load_recipe(path, ["optim.epochs=3", "model.fusion=concat", "data.body_size=[32, 48]"])
    assert (recipe.name, recipe.optim.epochs, recipe.model.fusion, recipe.data.body_size) == (
        "mine",
        3,
        "concat",
        [32, 48],
    )
    with pytest.raises(EmoedgeError, match="optim.epochs"):
        load_recipe(path, ["optim.epochs=three"])


@pytest.mark.parametrize(
    "text, needle",
    [
        ("optim:\n  epoch: 3\n", "optim.epoch: unknown key"),
        ("optim:\n  lr: fast\n", "optim.lr: expected float"),
        ("model:\n  branches: [place]\n", "model.branches"),
        ("model:\n  dropout: true\n", "model.dropout: expected float"),
        ("data: [1, 2]\n", "data: expected a mapping"),
        ("optim: {batch_size: 10, accumulate: 3}\n", "accumulate"),
        ("loss:\n  mode: median\n", "median"),
        ("base: self.yaml\n", "loops"),
        ("optim: [\n", "not valid YAML"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, text, needle):
    path = tmp_path / "self.yaml"
    path.write_text(text)
    with pytest.raises(EmoedgeError, match=needle.replace("[", r"\[")):
        load_recipe(path)
