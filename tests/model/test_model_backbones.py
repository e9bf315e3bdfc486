"""Backbone registry and weight loading: every variant builds offline; every supported weights file form loads;
files of another architecture, truncated files and files with pickled objects are refused with EmoedgeError."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch

from emoedge.errors import EmoedgeError
from emoedge.model.backbones import (
    create_backbone,
    create_classifier,
    get_variant,
    list_backbones,
)

# name -> declared feature dim (the table is the registry's contract with the three-branch network)
EXPECTED_DIMS = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "mobilenet_v3_small": 576,
    "mobilenet_v3_large": 960,
    "tiny": 96,
}


def _save_legacy_py2(obj: dict, path: Path) -> None:
    """Write `obj` as CSAILVision's Places365 files are: legacy (non-zip) torch format, pickle protocol 2, and a
    Python-2 byte string (SHORT_BINSTRING with a non-ASCII byte) that only loads with encoding="latin1"."""
    buffer = io.BytesIO()
    torch.save({"note": "caf\u00e9", **obj}, buffer, _use_new_zipfile_serialization=False, pickle_protocol=2)
    py3_unicode, py2_str = b"X\x05\x00\x00\x00caf\xc3\xa9", b"U\x04caf\xe9"
    raw = buffer.getvalue()
    assert raw.count(py3_unicode) == 1
    path.write_bytes(raw.replace(py3_unicode, py2_str))


def _backbone_state(classifier: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    prefix = get_variant(name).classifier + "."
    return {k: v for k, v in classifier.state_dict().items() if not k.startswith(prefix)}


def _assert_equal_states(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


@pytest.mark.parametrize("name", sorted(EXPECTED_DIMS))
def test_every_variant_builds_offline_with_declared_dim(name):
    assert sorted(EXPECTED_DIMS) == list_backbones()
    x = torch.randn(2, 3, 64, 64)
    backbone, dim = create_backbone(name, "none")
    classifier = create_classifier(name, 7)
    with torch.no_grad():
        assert dim == EXPECTED_DIMS[name] == get_variant(name).dim
        assert backbone.eval()(x).shape == (2, dim)
        assert classifier.eval()(x).shape == (2, 7)


def test_unknown_backbone_lists_known_names():
    with pytest.raises(EmoedgeError, match=r"unknown backbone 'resnet51'.*mobilenet_v3_large.*resnet50.*tiny"):
        create_backbone("resnet51")


@pytest.fixture(scope="module")
def places365(tmp_path_factory):
    """A CSAILVision-style resnet50_places365.pth.tar: `module.` keys, 365-class fc, no BatchNorm counters."""
    torch.manual_seed(1)
    source = create_classifier("resnet50", 365)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("places") / "resnet50_places365.pth.tar"
    _save_legacy_py2({"epoch": 90, "arch": "resnet50", "state_dict": state, "best_prec1": 54.74}, path)
    return path, source


def test_places365_legacy_checkpoint_loads_into_backbone(places365):
    path, source = places365
    with pytest.raises(UnicodeDecodeError):  # the file really is a Python-2 pickle
        torch.load(path, map_location="cpu", weights_only=True)
    backbone, _ = create_backbone("resnet50", str(path))
    _assert_equal_states(backbone.state_dict(), _backbone_state(source, "resnet50"))


def test_places365_classifier_kept_when_it_fits_reinitialised_otherwise(places365, caplog):
    path, source = places365
    same = create_classifier("resnet50", 365, str(path))
    assert torch.equal(same.fc.weight, source.fc.weight)
    with caplog.at_level(logging.INFO, logger="emoedge.model.backbones"):
        other = create_classifier("resnet50", 26, str(path))
    assert other.fc.weight.shape == (26, 2048)
    assert "initialised at random" in caplog.text and "(365, 2048)" in caplog.text
    _assert_equal_states(_backbone_state(other, "resnet50"), _backbone_state(source, "resnet50"))


@pytest.mark.parametrize(
    "name, wrap",
    [
        ("resnet18", lambda sd: sd),
        ("resnet18", lambda sd: {"state_dict": sd, "epoch": 3}),
        ("resnet18", lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}}),
        ("mobilenet_v3_small", lambda sd: {"format": "emoedge-backbone", "classes": ["a"], "state_dict": sd}),
        ("tiny", lambda sd: {"model": sd}),
    ],
    ids=["raw", "state_dict", "model+module", "emoedge-format", "tiny"],
)
def test_classification_checkpoint_with_other_class_count_loads_into_backbone(tmp_path, name, wrap):
    source = create_classifier(name, 8)
    path = tmp_path / "scene.pt"
    torch.save(wrap(source.state_dict()), path)
    backbone, _ = create_backbone(name, str(path))
    _assert_equal_states(backbone.state_dict(), _backbone_state(source, name))


@pytest.mark.parametrize(
    "file_arch, model_arch, named",
    [
        ("resnet18", "resnet50", r"missing keys \(\d+\): layer1\.0\.conv3\.weight"),
        ("resnet50", "resnet18", r"shape mismatches \(\d+\): layer1\.0\.conv1\.weight \(64, 64, 1, 1\) in the file"),
        ("mobilenet_v3_small", "resnet18", r"unexpected keys \(\d+\): features\.0\.0\.weight"),
    ],
)
def test_mismatched_architecture_is_refused_naming_keys(tmp_path, file_arch, model_arch, named):
    path = tmp_path / f"{file_arch}.pth"
    torch.save({"state_dict": create_classifier(file_arch, 5).state_dict()}, path)
    with pytest.raises(EmoedgeError, match=rf"weights {path} do not fit {model_arch} .*{named}"):
        create_backbone(model_arch, str(path))


def test_truncated_file_is_refused(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(create_classifier("tiny", 3).state_dict(), good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(EmoedgeError, match=r"truncated or corrupt"):
        create_backbone("tiny", str(bad))


class _Payload:
    """Would create a file if unpickling ever executed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_file_with_pickled_object_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": create_classifier("tiny", 3).state_dict(), "extra": _Payload(marker)}, path)
    with pytest.raises(EmoedgeError, match=r"pickled Python objects"):
        create_backbone("tiny", str(path))
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [({"epoch": 1}, r"no state dict found"), ({"state_dict": {"w": [1, 2]}}, r"no state dict found")],
)
def test_file_without_state_dict_is_refused(tmp_path, content, message):
    path = tmp_path / "odd.pt"
    torch.save(content, path)
    with pytest.raises(EmoedgeError, match=message):
        create_backbone("tiny", str(path))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(EmoedgeError, match=r"file not found"):
        create_backbone("tiny", str(tmp_path / "nowhere.pth"))


def test_imagenet_offline_raises_and_suggests_a_local_file():
    from torchvision.models import get_weight

    url = get_weight(get_variant("resnet18").imagenet).url
    if (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).exists():
        pytest.skip("ImageNet weights are cached on this machine: the offline failure cannot be shown")
    with pytest.raises(EmoedgeError, match=r"could not be fetched.*local weights file"):
        create_backbone("resnet18", "imagenet")


def test_tiny_has_no_imagenet_weights():
    with pytest.raises(EmoedgeError, match=r"no ImageNet weights"):
        create_classifier("tiny", 3, "imagenet")
