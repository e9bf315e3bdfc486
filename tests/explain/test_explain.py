"""Explanations: "where it looked" made measurable, and the Figure-1 image.

A body-only model is trained here on generated crops: half of each crop holds a striped figure whose colour implies
a group of categories (the sample dataset's body types), the other half neutral noise, the figure's side drawn at
random. Grad-CAM of a figure's category must then put at least 70% of its mass on the figure's half (50% by chance).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from emoedge.card import ModelCard
from emoedge.categories import CATEGORIES
from emoedge.data.sample import BODY_TYPES
from emoedge.data.transforms import normalize
from emoedge.errors import EmoedgeError
from emoedge.model.net import EmotionNet

pytest.importorskip("captum")
from emoedge.explain.cam import explain_person
from emoedge.explain.figure import draw_explanation, explanation_figure

SIZE = 96
TYPES = BODY_TYPES[:3]
CARD = ModelCard(
    name="figures", branches=("body",), backbones={"body": "tiny"}, fusion="attention",
    image_size=(SIZE, SIZE), body_size=(SIZE, SIZE),
)  # fmt: skip
MIN_SHARE = 0.70


def crop(rng: np.random.Generator, kind: int | None, left: bool) -> np.ndarray:
    """RGB [SIZE, SIZE, 3]: neutral grey noise, and (kind given) a striped figure of that body type on one half."""
    pixels = np.clip(rng.normal(128, 20, (SIZE, SIZE, 3)), 0, 255)
    if kind is not None:
        body = TYPES[kind]
        y, x = np.mgrid[0:SIZE, 0 : SIZE // 2]
        angle = np.deg2rad(body.stripe_angle)
        stripes = (np.floor((x * np.cos(angle) + y * np.sin(angle)) / 6) % 2)[..., None]
        figure = np.asarray(body.color, np.float64) * (0.6 + 0.4 * stripes)
        half = slice(0, SIZE // 2) if left else slice(SIZE // 2, SIZE)
        pixels[:, half] = figure + rng.normal(0, 8, figure.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def labels(kind: int | None) -> np.ndarray:
    out = np.zeros(len(CATEGORIES), np.float32)
    if kind is not None:
        out[[CATEGORIES.index(c) for c in TYPES[kind].categories]] = 1.0
    return out


@pytest.fixture(scope="module")
def trained() -> EmotionNet:
    """A tiny body-only model trained until it tells the figures apart (a few hundred steps on the CPU)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = EmotionNet(["body"], {"body": "tiny"}, dropout=0.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(220):
        kinds = [None if rng.random() < 0.25 else int(rng.integers(len(TYPES))) for _ in range(32)]
        batch = np.stack([normalize(crop(rng, k, bool(rng.random() < 0.5)), CARD.mean, CARD.std) for k in kinds])
        feats = {"body": net.body_features(torch.from_numpy(batch))}
        logits = net.heads(feats)["logits"]
        target = torch.from_numpy(np.stack([labels(k) for k in kinds]))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


def test_the_heat_map_lies_on_the_figure_that_implies_the_category(trained: EmotionNet) -> None:
    rng = np.random.default_rng(1)
    shares = []
    for kind in range(len(TYPES)):
        for left in (True, False):
            for _ in range(6):
                explanation = explain_person(
                    trained, CARD, crop(rng, kind, left), (0, 0, SIZE, SIZE), TYPES[kind].categories[0]
                )
                heat = explanation.maps["body"]
                assert heat.shape == (SIZE, SIZE) and abs(float(heat.sum()) - 1.0) < 1e-4
                half = heat[:, : SIZE // 2] if left else heat[:, SIZE // 2 :]
                shares.append(float(half.sum()))
                assert explanation.scores[TYPES[kind].categories[0]] > 0.5  # the model did learn the figure
    mean = float(np.mean(shares))
    print(f"heat-map share on the figure's half: mean {mean:.3f}, min {min(shares):.3f} over {len(shares)} crops")
    assert mean >= MIN_SHARE and np.quantile(shares, 0.25) >= 0.5


def test_explanations_name_the_category_and_check_the_box(trained: EmotionNet) -> None:
    pixels = crop(np.random.default_rng(2), 0, True)
    explanation = explain_person(trained, CARD, pixels, (0, 0, SIZE, SIZE))
    assert explanation.category == explanation.top(1)[0]
    assert explanation.weights == {"body": pytest.approx(1.0), "place": 0.0, "scene": 0.0}
    for box in [(10, 10, 5, 50), (200, 200, 300, 300), (0, 0, float("nan"), 10), (1, 2, 3)]:
        with pytest.raises(EmoedgeError, match=r"box .*: expected x1,y1,x2,y2 pixels"):
            explain_person(trained, CARD, pixels, box)
    with pytest.raises(EmoedgeError, match="category 'Joy': not one of the model's categories"):
        explain_person(trained, CARD, pixels, (0, 0, SIZE, SIZE), "Joy")


def test_the_figure_is_written(trained: EmotionNet, tmp_path) -> None:
    pixels = crop(np.random.default_rng(3), 1, False)
    explanation = explain_person(trained, CARD, pixels, (0, 0, SIZE, SIZE))
    out = draw_explanation(pixels, explanation, tmp_path / "fig" / "e.png", truth=list(TYPES[1].categories))
    import cv2

    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] >= 600 and image.shape[0] >= 600
    assert [p.name for p in out.parent.iterdir()] == ["e.png"]


def test_the_figure_has_its_legends(trained: EmotionNet) -> None:
    """A colour bar for the heat maps, the weights' scale, and what the category bars' colours and ticks mean."""
    from matplotlib import pyplot as plt

    pixels = crop(np.random.default_rng(4), 1, False)
    figure = explanation_figure(pixels, explain_person(trained, CARD, pixels, (0, 0, SIZE, SIZE)), truth=["Peace"])
    try:
        labels = {axes.get_ylabel() for axes in figure.axes} | {axes.get_xlabel() for axes in figure.axes}
        assert "Grad-CAM, relative to each map's peak" in labels
        assert "attention weight (the three sum to 1)" in labels
        legends = [axes.get_legend() for axes in figure.axes if axes.get_legend() is not None]
        assert [t.get_text() for t in legends[0].get_texts()] == ["at or above its threshold", "below", "threshold"]
    finally:
        plt.close(figure)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    from emoedge.bench.models import random_checkpoint

    return random_checkpoint(tmp_path_factory.mktemp("explain") / "model.pt")


def test_a_dataset_person_and_an_image_file_are_explained(checkpoint, sample_root, tmp_path) -> None:
    from emoedge.data.emotic import image_path, load_split
    from emoedge.explain.person import explain_annotated, explain_image, parse_box

    out = explain_annotated(checkpoint, sample_root, "test", 3, tmp_path / "a" / "p3.png", category="Peace")
    record = load_split(sample_root, "test").records[0]
    box = ",".join(str(v) for v in record.bbox)
    other = explain_image(checkpoint, image_path(sample_root, record), parse_box(box), tmp_path / "i.png")
    import cv2

    for path in (out, other):
        image = cv2.imread(str(path))
        assert image is not None and image.shape[1] > 1000  # four panels side by side, legible


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        ("index", "index 999: expected an integer from 0 to"),
        ("onnx", "explanations need the checkpoint (.pt)"),
        ("box", "--box '1,2,3': expected four numbers x1,y1,x2,y2"),
        ("out", "explanation image"),
    ],
)
def test_bad_requests_are_one_line(checkpoint, sample_root, tmp_path, call: str, needle: str) -> None:
    from emoedge.explain.person import explain_annotated, parse_box

    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(EmoedgeError, match=re.escape(needle)):
        if call == "index":
            explain_annotated(checkpoint, sample_root, "test", 999, tmp_path / "x.png")
        elif call == "onnx":
            explain_annotated(tmp_path / "model.onnx", sample_root, "test", 0, tmp_path / "x.png")
        elif call == "box":
            parse_box("1,2,3")
        else:
            explain_annotated(checkpoint, sample_root, "test", 0, tmp_path / "blocker" / "x.png")
