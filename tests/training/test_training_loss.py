"""The discrete loss against hand-computed numbers, the eq. 6 combination, options and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emoedge.errors import EmoedgeError
from emoedge.training.loss import (
    EmotionLoss,
    LossConfig,
    category_weights,
    dataset_category_weights,
    discrete_loss,
)

AFFECTION, ANGER, ANNOYANCE, CONFIDENCE, FEAR, YEARNING = 0, 1, 2, 5, 15, 25


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two persons. Labels: Affection in both, Anger in person 0, Annoyance in person 1; 23 categories absent.

    Predictions are 0 everywhere but: (0, Affection) 0.5, (0, Anger) 0.8, (1, Affection) 1.0,
    (0, Confidence) 0.5 and (1, Yearning) 1.0 — the last two in categories absent from the batch.
    """
    labels = torch.zeros(2, 26)
    labels[0, [AFFECTION, ANGER]] = 1
    labels[1, [AFFECTION, ANNOYANCE]] = 1
    pred = torch.zeros(2, 26)
    pred[0, AFFECTION], pred[0, ANGER], pred[1, AFFECTION] = 0.5, 0.8, 1.0
    pred[0, CONFIDENCE], pred[1, YEARNING] = 0.5, 1.0
    return pred, labels


# Squared errors: (0,Affection) 0.25, (0,Anger) 0.04, (1,Annoyance) 1.0 (predicted 0, labelled 1),
# (0,Confidence) 0.25 and (1,Yearning) 1.0 (absent categories, w = 0.0001); every other entry 0.
HAND = [
    # mode, w_Affection, w_Anger = w_Annoyance, loss
    # count: p = 2 and 1 -> 1/ln(3.2) = 0.8597337, 1/ln(2.2) = 1.2682994
    ("count", 0.8597337, 1.2682994, 0.25 * 0.8597337 + 0.04 * 1.2682994 + 1.0 * 1.2682994 + 1.25 * 0.0001),
    # probability: p = 2/2 and 1/2 -> 1/ln(2.2) = 1.2682994, 1/ln(1.7) = 1.8845585
    ("probability", 1.2682994, 1.8845585, 0.25 * 1.2682994 + 0.04 * 1.8845585 + 1.0 * 1.8845585 + 1.25 * 0.0001),
]


@pytest.mark.parametrize("mode, w_aff, w_one, loss", HAND)
def test_discrete_loss_matches_hand_computation(mode: str, w_aff: float, w_one: float, loss: float) -> None:
    pred, labels = _batch()
    weights = category_weights(labels, mode)
    assert weights.dtype == torch.float32 and weights.shape == (26,)
    assert weights[AFFECTION].item() == pytest.approx(w_aff, rel=1e-6)
    assert weights[ANGER].item() == pytest.approx(w_one, rel=1e-6)
    assert weights[ANNOYANCE].item() == pytest.approx(w_one, rel=1e-6)
    absent = [i for i in range(26) if i not in (AFFECTION, ANGER, ANNOYANCE)]
    assert torch.all(weights[absent] == torch.tensor(0.0001))
    assert discrete_loss(pred, labels, weights).item() == pytest.approx(loss, rel=1e-6)


def test_dataset_weights_are_probabilities_over_the_whole_set() -> None:
    labels = torch.zeros(4, 26)
    labels[:2, AFFECTION] = 1  # p = 0.5 -> 1/ln(1.7)
    labels[:, ANGER] = 1  # p = 1 -> 1/ln(2.2)
    labels[0, FEAR] = 1  # p = 0.25 -> 1/ln(1.45)
    w = dataset_category_weights(labels)
    assert w[AFFECTION].item() == pytest.approx(1.8845585, rel=1e-6)
    assert w[ANGER].item() == pytest.approx(1.2682994, rel=1e-6)
    assert w[FEAR].item() == pytest.approx(2.6913296, rel=1e-6)
    assert w[YEARNING].item() == pytest.approx(0.0001)


def _outputs(branches: tuple[str, ...], vad: bool = False, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = 6
    return {
        "logits": torch.randn(n, 26, generator=g),
        "branch_logits": {b: torch.randn(n, 26, generator=g) for b in branches},
        "vad": torch.full((n, 3), 5.0) if vad else None,
        "weights": torch.softmax(torch.randn(n, len(branches), generator=g), dim=1),
    }


def _labels(seed: int = 1) -> torch.Tensor:
    labels = (torch.rand(6, 26, generator=torch.Generator().manual_seed(seed)) < 0.3).float()
    labels[:, YEARNING] = 0  # one category absent from the batch
    return labels


@pytest.mark.parametrize("mode", ["count", "probability"])
def test_total_is_eq6_combination_of_branch_losses(mode: str) -> None:
    cfg = LossConfig(mode=mode, alpha=0.5, beta=2.0, gamma=3.0, delta=0.25)
    outputs, labels = _outputs(("body", "place", "scene")), _labels()
    total, parts = EmotionLoss(cfg)(outputs, labels)
    w = category_weights(labels, mode)
    each = {
        b: discrete_loss(torch.sigmoid(outputs["branch_logits"][b]), labels, w).item()
        for b in ("body", "place", "scene")
    }
    each["fused"] = discrete_loss(torch.sigmoid(outputs["logits"]), labels, w).item()
    expected = 0.5 * each["body"] + 2.0 * each["scene"] + 3.0 * each["place"] + 0.25 * each["fused"]
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert set(parts) == {"body", "place", "scene", "fused", "total"}
    for key, value in each.items():
        assert parts[key] == pytest.approx(value, rel=1e-6)
    assert parts["total"] == pytest.approx(expected, rel=1e-6)


def test_missing_branches_are_skipped() -> None:
    cfg = LossConfig(alpha=0.5, beta=100.0, gamma=100.0, delta=2.0)
    outputs, labels = _outputs(("body",)), _labels()
    total, parts = EmotionLoss(cfg)(outputs, labels)
    assert set(parts) == {"body", "fused", "total"}
    assert total.item() == pytest.approx(0.5 * parts["body"] + 2.0 * parts["fused"], rel=1e-6)


def test_fixed_mode_needs_and_uses_the_given_weights() -> None:
    with pytest.raises(EmoedgeError, match="fixed"):
        EmotionLoss(LossConfig(mode="fixed"))
    fixed = torch.linspace(0.5, 3.0, 26)
    outputs, labels = _outputs(("body", "scene")), _labels()
    total, _ = EmotionLoss(LossConfig(mode="fixed"), fixed_weights=fixed)(outputs, labels)
    expected = sum(
        discrete_loss(torch.sigmoid(x), labels, fixed)
        for x in (outputs["branch_logits"]["body"], outputs["branch_logits"]["scene"], outputs["logits"])
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_config_rejects_unknown_mode() -> None:
    with pytest.raises(EmoedgeError, match="loss.mode"):
        LossConfig(mode="median")
    with pytest.raises(EmoedgeError, match="loss.alpha"):
        LossConfig(alpha=-1.0)


def test_vad_term_only_with_positive_coefficient() -> None:
    outputs, labels = _outputs(("body", "place"), vad=True), _labels()
    vad_true = torch.tensor([[5.5, 7.0, 5.0]]).repeat(6, 1)
    # Predicted 5.0 everywhere: |d| = 0.5 -> 0.5·0.5² = 0.125; |d| = 2 -> 2 − 0.5 = 1.5; |d| = 0 -> 0.
    per_person = 0.125 + 1.5
    base, parts0 = EmotionLoss(LossConfig(vad=0.0))(outputs, labels, vad_true)
    assert "vad" not in parts0
    total, parts = EmotionLoss(LossConfig(vad=0.5))(outputs, labels, vad_true)
    assert parts["vad"] == pytest.approx(6 * per_person)
    assert total.item() == pytest.approx(base.item() + 0.5 * 6 * per_person, rel=1e-6)
    # A model without a VAD head: no term whatever the coefficient.
    no_head = {**outputs, "vad": None}
    total, parts = EmotionLoss(LossConfig(vad=0.5))(no_head, labels, vad_true)
    assert "vad" not in parts and total.item() == pytest.approx(base.item(), rel=1e-6)


def test_half_precision_outputs_give_a_float32_loss_with_gradients() -> None:
    outputs, labels = _outputs(("body", "place", "scene")), _labels()
    half = {
        "logits": outputs["logits"].half().requires_grad_(),
        "branch_logits": {b: x.half() for b, x in outputs["branch_logits"].items()},
        "vad": None,
        "weights": None,
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, _ = EmotionLoss(LossConfig())(half, labels)
    assert total.dtype == torch.float32
    reference, _ = EmotionLoss(LossConfig())(
        {
            **half,
            "logits": half["logits"].detach().float(),
            "branch_logits": {b: x.float() for b, x in half["branch_logits"].items()},
        },
        labels,
    )
    assert total.item() == pytest.approx(reference.item(), rel=1e-6)
    total.backward()
    assert half["logits"].grad is not None and torch.isfinite(half["logits"].grad.float()).all()


def test_smooth_l1_reference_is_torch_sum() -> None:
    # Guards the hand numbers above against a change of torch's default beta (1.0).
    assert F.smooth_l1_loss(
        torch.tensor([5.0, 5.0, 5.0]), torch.tensor([5.5, 7.0, 5.0]), reduction="sum"
    ).item() == pytest.approx(1.625)
