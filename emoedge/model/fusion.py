"""Fusion of the branch feature vectors (paper §3.4, eq. 1–3) and the concatenation baseline (Table 2).

Both take a list of per-branch features [N, D_k] in branch order and return (fused [N, D], weights or None).
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionFusion(nn.Module):
    """x_a = Σ_k w_k·x_k with W = softmax(F(x_1 ⊕ … ⊕ x_K)), F a small MLP.

    Why the projections: the weighted sum needs one feature size. With the paper's three ResNet50s all are 2048 and
    no projection is made; mixed backbones (edge variants) are projected to `dim` (default: the largest size).
    """

    def __init__(self, dims: list[int], dim: int | None = None, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.out_dim = dim or max(dims)
        self.project = nn.ModuleList(nn.Identity() if d == self.out_dim else nn.Linear(d, self.out_dim) for d in dims)
        self.score = nn.Sequential(
            nn.Linear(sum(dims), hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, len(dims))
        )

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.score(torch.cat(feats, dim=1)), dim=1)
        stacked = torch.stack([proj(f) for proj, f in zip(self.project, feats)], dim=1)  # [N, K, D]
        return (weights.unsqueeze(-1) * stacked).sum(dim=1), weights


class ConcatFusion(nn.Module):
    """x_b ⊕ x_p ⊕ x_e straight to the head: the additive baseline of the paper's ablation."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.out_dim = sum(dims)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, None]:
        return torch.cat(feats, dim=1), None
