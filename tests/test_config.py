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


SAMPLE = RECIPES[0].parent / "sample.yaml"


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=-0.1", "optim.lr -0.1: expected a finite number > 0"),
        ("optim.lr=0", "optim.lr 0.0: expected a finite number > 0"),
        ("optim.weight_decay=-0.0001", "optim.weight_decay -0.0001: expected a finite number >= 0"),
        ("optim.momentum=1", "optim.momentum 1.0: expected a number in [0, 1)"),
        ("optim.gamma=0", "optim.gamma 0.0: expected a finite number > 0"),
        ("optim.epochs=0", "optim.epochs 0: expected an integer >= 1"),
        ("optim.epochs=-5", "optim.epochs -5: expected an integer >= 1"),
        ("optim.batch_size=0", "optim.batch_size 0: expected an integer >= 1"),
        ("optim.accumulate=0", "optim.accumulate 0: expected an integer >= 1"),
        ("optim.milestones=[0]", "optim.milestones [0]: expected increasing epochs >= 1"),
        ("optim.milestones=[8, 4]", "optim.milestones [8, 4]: expected increasing epochs >= 1"),
        ("data.workers=-1", "data.workers -1: expected an integer >= 0"),
        ("data.std=[0.2, 0, 0.2]", "data.std [0.2, 0.0, 0.2]: expected 3 finite numbers > 0"),
        ("data.image_size=[8, 8]", "data.image_size [8, 8]: expected [height, width], each >= 16"),
        ("model.dropout=-0.1", "model.dropout -0.1: expected a number in [0, 1)"),
        ("model.attention_hidden=0", "model.attention_hidden 0: expected an integer >= 1"),
        ("model.fusion_dim=0", "model.fusion_dim 0: expected an integer >= 1"),
        ("loss.c=-1", "loss.c -1.0: expected a finite number > 0"),
        ("loss.alpha=-1", "loss.alpha -1.0: expected a finite number >= 0"),
        ("run.seed=-1", "run.seed -1: expected an integer from 0 to 4294967295"),
        ("run.seed=4294967296", "run.seed 4294967296: expected an integer from 0 to 4294967295"),
        ("run.device=gpu7", "run.device 'gpu7': expected auto, cpu or cuda[:K]"),
    ],
)
def test_numbers_out_of_range_name_the_override_key_and_value(override, message):
    with pytest.raises(EmoedgeError) as exc:
        load_recipe(SAMPLE, [override])
    assert str(exc.value) == f"recipe {SAMPLE}, override {override}: {message}"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("key", ["optim.lr", "optim.weight_decay", "optim.momentum", "loss.c", "data.mean"])
def test_non_finite_numbers_stop_before_any_training(key, value):
    override = f"{key}=[{value}, 0.5, 0.5]" if key == "data.mean" else f"{key}={value}"
    with pytest.raises(
        EmoedgeError, match=f"{key}.*expected a finite number, got {value.lstrip('.').replace('-.', '-')}"
    ):
        load_recipe(SAMPLE, [override])


def test_a_recipe_file_value_out_of_range_names_the_file_key_and_value(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"base: {SAMPLE}\noptim:\n  epochs: 0\n")
    with pytest.raises(EmoedgeError, match=rf"^recipe {path}: optim.epochs 0: expected an integer >= 1$"):
        load_recipe(path)


def test_a_loss_with_every_term_off_is_refused():
    terms = ["loss.alpha=0", "loss.beta=0", "loss.gamma=0", "loss.delta=0", "loss.vad=0"]
    with pytest.raises(EmoedgeError, match="all 0, nothing would be trained"):
        load_recipe(SAMPLE, terms)
    assert load_recipe(SAMPLE, terms[:-1]).loss.vad > 0  # the VAD term alone still trains
