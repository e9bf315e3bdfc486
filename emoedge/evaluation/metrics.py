"""Evaluation numbers (SPEC §6): AP per category, mAP, precision = recall thresholds, VAD MAE. Numpy in, numpy out.

Why NaN for a category without positives: its AP is undefined (scikit-learn would warn and return a meaningless
value); small splits such as the sample dataset's lack some categories, and mAP is then the mean over the rest, with
a warning naming the categories left out.
"""

from __future__ import annotations

import warnings

import numpy as np

from emoedge.categories import CATEGORIES, NUM_CATEGORIES
from emoedge.errors import EmoedgeError

DEFAULT_THRESHOLD = 0.5  # for a category the validation split cannot calibrate (no positives)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 and labels as booleans, both [N,26]; non-finite scores are a user-visible error."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[1] != NUM_CATEGORIES or labels.shape != scores.shape:
        raise ValueError(
            f"expected scores and labels of shape [N, {NUM_CATEGORIES}], got {scores.shape} and {labels.shape}"
        )
    if not np.isfinite(scores).all():
        raise EmoedgeError("scores contain NaN or infinite values (has training diverged?)")
    return scores, labels > 0.5


def average_precisions(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """scikit-learn `average_precision_score` per category on the raw scores -> [26]; NaN where no positives."""
    from sklearn.metrics import average_precision_score

    scores, positive = _check(scores, labels)
    aps = np.full(NUM_CATEGORIES, np.nan)
    for i in range(NUM_CATEGORIES):
        if positive[:, i].any():
            aps[i] = average_precision_score(positive[:, i], scores[:, i])
    return aps


def mean_ap(aps: np.ndarray) -> float:
    """Mean AP over the categories where it is defined; warns naming the categories left out."""
    aps = np.asarray(aps, dtype=np.float64)
    missing = np.isnan(aps)
    if missing.any():
        names = [CATEGORIES[i] if len(aps) == NUM_CATEGORIES else str(i) for i in np.flatnonzero(missing)]
        warnings.warn(
            f"mAP over {int((~missing).sum())} of {len(aps)} categories; no positive example of: {', '.join(names)}",
            stacklevel=2,
        )
    if missing.all():
        return float("nan")
    return float(aps[~missing].mean())


def pr_equal_thresholds(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per category, the score threshold on the PR curve where precision is closest to recall -> [26].

    Ties go to the lower threshold; points with recall 0 (P = R = 0) are not candidates; a category without
    positives gets 0.5. A person shows category i when
    score_i >= threshold_i (the convention of scikit-learn's `precision_recall_curve`).
    """
    from sklearn.metrics import precision_recall_curve

    scores, positive = _check(scores, labels)
    thresholds = np.full(NUM_CATEGORIES, DEFAULT_THRESHOLD)
    for i in range(NUM_CATEGORIES):
        if not positive[:, i].any():
            continue
        precision, recall, cuts = precision_recall_curve(positive[:, i], scores[:, i])
        # The curve's last point (P=1, R=0) has no threshold. Points with recall 0 (and so precision 0: only
        # negatives above the cut) are degenerate equalities and are skipped; the lowest cut has recall 1, so some
        # point always remains. `cuts` rises, so the first minimum is the lowest threshold.
        gap = np.where(recall[:-1] > 0, np.abs(precision[:-1] - recall[:-1]), np.inf)
        best = np.flatnonzero(gap <= gap.min() + 1e-12)[0]
        thresholds[i] = cuts[best]
    return thresholds


def precision_recall_at(
    scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall per category when predicting score >= threshold -> ([26], [26]).

    NaN where undefined: precision when nothing is predicted, recall when there is no positive.
    """
    scores, positive = _check(scores, labels)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thresholds.shape != (NUM_CATEGORIES,):
        raise ValueError(f"expected {NUM_CATEGORIES} thresholds, got {thresholds.shape}")
    predicted = scores >= thresholds
    tp = (predicted & positive).sum(axis=0).astype(np.float64)
    n_pred = predicted.sum(axis=0).astype(np.float64)
    n_pos = positive.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / n_pred, np.nan)
        recall = np.where(n_pos > 0, tp / n_pos, np.nan)
    return precision, recall


def vad_mae(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean absolute error per dimension (valence, arousal, dominance; 1–10 scale) -> [3]."""
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise ValueError(f"expected predicted and true VAD of shape [N, 3], got {pred.shape} and {true.shape}")
    if len(pred) == 0:
        return np.full(3, np.nan)
    return np.abs(pred - true).mean(axis=0)
