"""Backbone pretraining on a generated ImageFolder: the output loads into create_backbone with the same weights,
only appears when complete, and bad folders are refused with one-line EmoedgeErrors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from emoedge import settings
from emoedge.errors import EmoedgeError
from emoedge.fileio import safe_torch_load
from emoedge.model.backbones import create_backbone, create_classifier
from emoedge.training.pretrain import PretrainSettings, pretrain_backbone

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def _image_folder(root, classes=COLOURS, per_class=8, size=32):
    rng = np.random.default_rng(0)
    for name, rgb in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            noise = rng.integers(-30, 30, size=(size, size, 3))
            pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_pretrain_writes_a_backbone_that_create_backbone_loads(tmp_path, capsys):
    data = _image_folder(tmp_path / "data")
    out = tmp_path / "ckpt" / "scene_tiny.pt"
    settings = PretrainSettings(arch="tiny", branch="scene", epochs=2, batch_size=8, lr=0.05, image_size=32, workers=0)
    result = pretrain_backbone(data, out, settings)
    assert result == out and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left behind
    printed = capsys.readouterr().out
    assert "epoch 2/2" in printed and "val accuracy" in printed

    saved = safe_torch_load(out)  # weights_only=True
    assert saved["format"] == "emoedge-backbone"
    assert (saved["arch"], saved["branch"], saved["classes"]) == ("tiny", "scene", ["blue", "green", "red"])
    state = saved["state_dict"]

    backbone, dim = create_backbone("tiny", str(out))
    own = backbone.state_dict()
    assert dim == 96 and own.keys() == {k for k in state if not k.startswith("fc.")}
    assert all(torch.equal(own[k], state[k]) for k in own)
    classifier = create_classifier("tiny", 3, str(out))
    assert torch.equal(classifier.fc.weight, state["fc.weight"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root / "missing", r"not a directory"),
        (lambda root: root, r"class folder"),  # empty folder
        (lambda root: _image_folder(root / "one", {"red": (255, 0, 0)}, per_class=2), r"1 class folder.*at least 2"),
        (lambda root: (root / "a").mkdir() or (root / "b").mkdir() or root, r"no valid file"),  # empty class folders
    ],
    ids=["missing", "empty", "one-class", "no-images"],
)
def test_bad_folder_is_refused(tmp_path, make, message):
    root = tmp_path / "data"
    root.mkdir()
    out = tmp_path / "out.pt"
    with pytest.raises(EmoedgeError, match=message) as info:
        pretrain_backbone(make(root), out, PretrainSettings(arch="tiny", epochs=1, workers=0))
    assert "\n" not in str(info.value)
    assert not out.exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("branch", "body", "branch 'body': expected one of 'place', 'scene'"),
        ("epochs", 0, "epochs 0: expected an integer >= 1"),
        ("batch_size", 2.5, "batch_size: expected int, got 2.5"),
        ("lr", 0.0, "lr 0.0: expected a finite number > 0"),
        ("lr", float("nan"), "lr: expected a finite number, got nan"),
        ("image_size", 8, "image_size 8: expected an integer >= 16"),
        ("workers", -1, "workers -1: expected an integer >= 0"),
        ("seed", True, "seed: expected int, got True"),
        ("seed", -1, "seed -1: expected an integer from 0 to 4294967295"),
        ("seed", 2**64, f"seed {2**64}: expected an integer from 0 to 4294967295"),
        ("val_fraction", 1.0, "val_fraction 1.0: expected a number in [0, 1)"),
        ("device", "gpu7", "device 'gpu7': expected auto, cpu or cuda[:K]"),
        ("weights", 3, "weights: expected str, got 3"),
    ],
)
def test_bad_settings_are_refused_in_one_line(field, value, message):
    # Checked where they enter, before any file is read: the settings alone are refused, field and value named.
    with pytest.raises(EmoedgeError) as info:
        PretrainSettings(**{field: value})
    assert str(info.value) == message


def test_unknown_arch_is_refused_listing_the_known_ones():
    with pytest.raises(EmoedgeError, match=r"unknown backbone 'resnet51'; known: .*tiny"):
        PretrainSettings(arch="resnet51")


def test_settings_from_key_value_overrides_name_the_key():
    # The CLI's path: options and key=value strings through the one settings mechanism.
    data = settings.apply_overrides({"arch": "tiny"}, ["lr=0.5", "branch=scene", "weights=null"])
    assert settings.from_dict(PretrainSettings, data) == PretrainSettings(arch="tiny", lr=0.5, branch="scene")
    with pytest.raises(EmoedgeError, match=r"epoch: unknown key \(did you mean 'epochs'\?\)"):
        settings.from_dict(PretrainSettings, {"epoch": 3})
