"""Metrics against scikit-learn and against hand-made cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from emoedge.errors import EmoedgeError
from emoedge.evaluation.metrics import (
    average_precisions,
    mean_ap,
    pr_equal_thresholds,
    precision_recall_at,
    vad_mae,
)


def _random(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 26)) < rng.uniform(0.02, 0.5, 26)).astype(np.float32)
    labels[:, 25] = 0  # Yearning: no positive in this split
    labels[0, 3] = 1  # make sure every other column has a positive
    scores = np.clip(0.3 * labels + rng.random((n, 26)) * 0.8, 0, 1).astype(np.float32)
    return scores, labels


def test_average_precisions_match_sklearn_and_nan_without_positives() -> None:
    scores, labels = _random()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warning leaks for the empty category
        aps = average_precisions(scores, labels)
    assert aps.shape == (26,)
    for i in range(25):
        assert aps[i] == pytest.approx(average_precision_score(labels[:, i], scores[:, i]), abs=1e-12)
    assert np.isnan(aps[25])


def test_mean_ap_ignores_nan_and_names_the_excluded_categories() -> None:
    aps = np.full(26, 0.5)
    aps[:13] = 0.25
    aps[[1, 25]] = np.nan  # Anger, Yearning
    with pytest.warns(UserWarning, match="Anger, Yearning"):
        value = mean_ap(aps)
    assert value == pytest.approx((12 * 0.25 + 12 * 0.5) / 24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_ap(np.full(26, 0.4)) == pytest.approx(0.4)
    with pytest.warns(UserWarning):
        assert np.isnan(mean_ap(np.full(26, np.nan)))


def test_pr_equal_threshold_on_a_constructed_case() -> None:
    scores = np.zeros((8, 26))
    labels = np.zeros((8, 26))
    # Category 0: by descending score the labels are 1 0 1 1 | 0 0 1 0 (4 positives). At threshold 0.6 four persons
    # are predicted, three of them positive: precision 3/4 == recall 3/4.
    scores[:, 0] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    labels[:, 0] = [1, 0, 1, 1, 0, 0, 1, 0]
    # Category 1: no exact equality; thresholds 0.7 (P 1/2, R 1/3) and 0.5 (P 1/2, R 2/3) tie at |P − R| = 1/6,
    # and the lower one wins. The top score is a negative (P = R = 0 there), which is not a candidate.
    scores[:5, 1] = [0.9, 0.7, 0.5, 0.5, 0.1]
    labels[:5, 1] = [0, 1, 0, 1, 1]
    # Category 2 has no positive: 0.5.
    scores[:, 2] = np.linspace(0.1, 0.9, 8)
    thresholds = pr_equal_thresholds(scores, labels)
    assert thresholds.shape == (26,)
    assert thresholds[0] == pytest.approx(0.6)
    assert thresholds[1] == pytest.approx(0.5)
    assert thresholds[2] == 0.5
    precision, recall = precision_recall_at(scores, labels, thresholds)
    assert precision[0] == recall[0] == pytest.approx(0.75)
    assert (precision[1], recall[1]) == (pytest.approx(0.5), pytest.approx(2 / 3))


def test_pr_equal_thresholds_hit_equality_on_random_data() -> None:
    # With distinct scores precision == recall exactly when as many persons are predicted as there are positives.
    rng = np.random.default_rng(3)
    labels = (rng.random((200, 26)) < 0.2).astype(float)
    labels[0] = 1
    scores = rng.permutation(200 * 26).reshape(200, 26) / (200 * 26) + 0.2003 * labels  # all distinct
    thresholds = pr_equal_thresholds(scores, labels)
    precision, recall = precision_recall_at(scores, labels, thresholds)
    np.testing.assert_allclose(precision, recall, atol=1e-12)


def test_precision_recall_at_by_hand_and_undefined_cases() -> None:
    scores = np.zeros((4, 26))
    labels = np.zeros((4, 26))
    scores[:, 0] = [0.9, 0.6, 0.4, 0.1]
    labels[:, 0] = [1, 0, 1, 0]
    labels[:, 1] = [1, 0, 0, 0]  # category 1: nothing predicted at threshold 0.5 -> precision undefined
    precision, recall = precision_recall_at(scores, labels, np.full(26, 0.5))
    assert (precision[0], recall[0]) == (0.5, 0.5)  # predicted {0.9, 0.6}: one of two positives
    assert np.isnan(precision[1]) and recall[1] == 0.0
    assert np.isnan(recall[2])  # no positive


def test_vad_mae_by_hand() -> None:
    pred = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    true = np.array([[2.0, 2.0, 2.0], [2.0, 2.0, 5.0]])
    np.testing.assert_allclose(vad_mae(pred, true), [1.0, 0.0, 2.5])


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        average_precisions(np.zeros((3, 25)), np.zeros((3, 25)))
    scores = np.zeros((3, 26))
    scores[0, 0] = np.nan
    with pytest.raises(EmoedgeError, match="NaN"):
        average_precisions(scores, np.ones((3, 26)))
