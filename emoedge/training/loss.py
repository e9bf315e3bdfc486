"""The discrete-category loss of EMOTIC and the paper's multi-branch total (SPEC §3, paper eq. 4–6).

Why the "count" form is the default: the official EMOTIC code weights category i by 1/ln(c + n_i) with n_i the
number of positives of i in the batch (and 0.0001 for a category absent from the batch), whereas the paper's text
says "probability". The probability form (n_i / B) and weights fixed once from the whole training set are options.
The loss is a sum over categories and over the batch, as in the official code; the trainer divides by the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emoedge.categories import NUM_CATEGORIES
from emoedge.config import LossConfig
from emoedge.errors import EmoedgeError

ABSENT_WEIGHT = 1e-4  # the official code's weight for a category with no positive in the batch
# Branch -> coefficient name of eq. 6: α body, β scene gist (L_e), γ place (L_p); δ is the fused head (L_a).
BRANCH_COEFFICIENTS = {"body": "alpha", "scene": "beta", "place": "gamma"}


def _check_labels(labels: torch.Tensor, what: str) -> None:
    if labels.dim() != 2 or labels.shape[1] != NUM_CATEGORIES:
        raise EmoedgeError(f"{what}: expected shape [N, {NUM_CATEGORIES}], got {list(labels.shape)}")


def _weights_from_p(p: torch.Tensor, present: torch.Tensor, c: float) -> torch.Tensor:
    # p_i > 0 where present, so c >= 1 is always valid; only a smaller c needs the (synchronising) check.
    if c < 1 and bool((present & (c + p <= 1)).any()):
        raise EmoedgeError(f"loss.c {c}: ln(c + p_i) must be positive for every category; use c >= 1 (paper: 1.2)")
    return torch.where(present, 1.0 / torch.log(c + p), torch.full_like(p, ABSENT_WEIGHT))


def category_weights(labels: torch.Tensor, mode: str = "count", c: float = 1.2) -> torch.Tensor:
    """w_i = 1 / ln(c + p_i) from one batch of multi-hot labels [B,26] (paper eq. 5) -> [26] float32.

    mode "count": p_i = number of positives of category i in the batch (official EMOTIC code);
    mode "probability": p_i = that count / B (the paper's text). Absent categories get 0.0001.
    """
    _check_labels(labels, "category_weights labels")
    counts = (labels.detach().float() > 0.5).sum(dim=0).float()
    present = counts > 0
    if mode == "count":
        p = counts
    elif mode == "probability":
        p = counts / max(labels.shape[0], 1)
    else:
        raise EmoedgeError(f"category_weights mode {mode!r}: expected 'count' or 'probability'")
    return _weights_from_p(p, present, c)


def dataset_category_weights(labels: torch.Tensor, c: float = 1.2) -> torch.Tensor:
    """Weights fixed from the whole training set [N,26]: w_i = 1 / ln(c + n_i / N); absent -> 0.0001."""
    _check_labels(labels, "dataset_category_weights labels")
    if labels.shape[0] == 0:
        raise EmoedgeError("dataset_category_weights: the training set has no labelled person")
    counts = (labels.detach().float() > 0.5).sum(dim=0).float()
    return _weights_from_p(counts / labels.shape[0], counts > 0, c)


def discrete_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_batch Σ_i w_i (ŷ_i − y_i)² (paper eq. 4), with ŷ the sigmoid scores [B,26] and w [26]."""
    if pred.shape != target.shape:
        raise EmoedgeError(f"discrete_loss: predictions {list(pred.shape)} and targets {list(target.shape)} differ")
    return (weights * (pred - target) ** 2).sum()


class EmotionLoss(nn.Module):
    """L = α L_body + β L_scene + γ L_place + δ L_fused (+ vad · smooth-L1 on VAD), paper eq. 6.

    Terms of branches the model lacks are skipped. The category weights are computed once per batch from the labels
    (or fixed) and shared by every term. Everything is computed in float32, also under autocast.
    """

    def __init__(self, cfg: LossConfig, fixed_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.mode == "fixed":
            if fixed_weights is None:
                raise EmoedgeError("loss.mode 'fixed' needs weights from the training set (dataset_category_weights)")
            fixed_weights = torch.as_tensor(fixed_weights, dtype=torch.float32).flatten()
            if fixed_weights.numel() != NUM_CATEGORIES:
                raise EmoedgeError(f"loss fixed weights: expected {NUM_CATEGORIES} values, got {fixed_weights.numel()}")
        else:
            fixed_weights = None
        # A buffer, so that .to(device) moves it; not persistent, so state dicts are unaffected.
        self.register_buffer("fixed_weights", fixed_weights, persistent=False)

    def weights(self, labels: torch.Tensor) -> torch.Tensor:
        if self.fixed_weights is not None:
            return self.fixed_weights.to(labels.device)
        return category_weights(labels, self.cfg.mode, self.cfg.c)

    def forward(
        self, outputs: dict, labels: torch.Tensor, vad: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (a scalar to backpropagate) and each computed term as a float, for logging.

        The floats: "body", "place", "scene" (the branches present), "fused", "vad" (when that term is added) —
        each unweighted — and "total", the weighted sum.
        """
        cfg = self.cfg
        with torch.autocast(labels.device.type, enabled=False):
            target = labels.float()
            weights = self.weights(target)
            terms: dict[str, torch.Tensor] = {}
            total = target.new_zeros(())
            for branch, logits in (outputs.get("branch_logits") or {}).items():
                if branch not in BRANCH_COEFFICIENTS:
                    raise EmoedgeError(f"loss: unknown branch {branch!r} in the model outputs")
                terms[branch] = discrete_loss(torch.sigmoid(logits.float()), target, weights)
                total = total + getattr(cfg, BRANCH_COEFFICIENTS[branch]) * terms[branch]
            terms["fused"] = discrete_loss(torch.sigmoid(outputs["logits"].float()), target, weights)
            total = total + cfg.delta * terms["fused"]
            vad_pred = outputs.get("vad")
            if vad_pred is not None and cfg.vad > 0:
                if vad is None:
                    raise EmoedgeError("loss.vad > 0 and the model predicts VAD, but no VAD labels were given")
                terms["vad"] = F.smooth_l1_loss(vad_pred.float(), vad.float().to(vad_pred.device), reduction="sum")
                total = total + cfg.vad * terms["vad"]
        # One device-to-host copy for all the logged numbers, not one per term.
        values = torch.stack([*terms.values(), total]).detach().cpu().tolist()
        return total, dict(zip([*terms, "total"], values))
