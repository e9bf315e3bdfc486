"""The three-branch context-aware emotion network (SPEC §2).

Why the split into `context_features`, `body_features` and `heads`: at inference the two context branches (place,
scene gist) run once per frame while the body branch runs on every person of the frame as one batch; `forward`
broadcasts a single whole image over N persons so that the same module serves training (one image per person) and
deployment (one image per frame), and exports to one ONNX graph with 2 context evaluations whatever N is.
"""

from __future__ import annotations

import torch
from torch import nn

from emoedge.card import ModelCard
from emoedge.categories import NUM_CATEGORIES
from emoedge.config import Recipe
from emoedge.errors import EmoedgeError
from emoedge.model.backbones import create_backbone
from emoedge.model.fusion import AttentionFusion, ConcatFusion

CONTEXT_BRANCHES = ("place", "scene")
VAD_MIDPOINT = 5.5  # EMOTIC's VAD scale is 1..10; start the regression at its centre


class EmotionNet(nn.Module):
    """Body + place + scene-gist encoders, a 26-way head per branch, fusion, a fused head and an optional VAD head."""

    def __init__(
        self,
        branches: list[str],
        backbones: dict[str, str],
        *,
        weights: dict[str, str | None] | None = None,
        fusion: str = "attention",
        fusion_dim: int | None = None,
        attention_hidden: int = 256,
        dropout: float = 0.5,
        vad: bool = False,
    ) -> None:
        super().__init__()
        weights = weights or {}
        self.branches = tuple(branches)
        encoders, dims = {}, []
        for branch in self.branches:
            encoders[branch], dim = create_backbone(backbones[branch], weights.get(branch))
            dims.append(dim)
        self.encoders = nn.ModuleDict(encoders)
        self.branch_heads = nn.ModuleDict(
            {b: nn.Sequential(nn.Dropout(dropout), nn.Linear(d, NUM_CATEGORIES)) for b, d in zip(self.branches, dims)}
        )
        if fusion == "attention":
            self.fusion: nn.Module = AttentionFusion(dims, fusion_dim, attention_hidden, dropout)
        else:
            self.fusion = ConcatFusion(dims)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.fusion.out_dim, NUM_CATEGORIES))
        self.vad_head = nn.Linear(self.fusion.out_dim, 3) if vad else None
        if self.vad_head is not None:
            nn.init.constant_(self.vad_head.bias, VAD_MIDPOINT)

    @property
    def context_branches(self) -> tuple[str, ...]:
        return tuple(b for b in self.branches if b in CONTEXT_BRANCHES)

    def context_features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Place and scene-gist features of whole images [M,3,H,W] -> {branch: [M,D]}."""
        return {b: self.encoders[b](image) for b in self.context_branches}

    def body_features(self, body: torch.Tensor) -> torch.Tensor:
        """Body features of person crops [N,3,h,w] -> [N,D]."""
        return self.encoders["body"](body)

    def heads(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | dict[str, torch.Tensor] | None]:
        """Per-branch logits, fusion, fused logits, modality weights and VAD from per-branch features [N,D_k]."""
        ordered = [feats[b] for b in self.branches]
        fused, weights = self.fusion(ordered)
        return {
            "logits": self.head(fused),
            "branch_logits": {b: self.branch_heads[b](feats[b]) for b in self.branches},
            "weights": weights,
            "vad": self.vad_head(fused) if self.vad_head is not None else None,
        }

    def forward(self, image: torch.Tensor, body: torch.Tensor) -> dict:
        """`image` [M,3,H,W] with M == N (training) or M == 1 (one frame, its context shared by N persons)."""
        n = body.shape[0]
        if image.shape[0] not in (1, n):
            raise EmoedgeError(f"model input: {image.shape[0]} whole images for {n} persons; expected 1 or {n}")
        feats = {b: f.expand(n, -1) for b, f in self.context_features(image).items()}
        feats["body"] = self.body_features(body)
        return self.heads(feats)


def build_model(recipe: Recipe, *, pretrained: bool = True) -> EmotionNet:
    """The network of a recipe; `pretrained=False` skips weight files (a checkpoint's state dict follows)."""
    m = recipe.model
    return EmotionNet(
        m.branches,
        m.backbones,
        weights=m.weights if pretrained else None,
        fusion=m.fusion,
        fusion_dim=m.fusion_dim,
        attention_hidden=m.attention_hidden,
        dropout=m.dropout,
        vad=m.vad,
    )


def card_for(recipe: Recipe) -> ModelCard:
    """The model card of a recipe (thresholds default to 0.5 until validation sets them)."""
    m, d = recipe.model, recipe.data
    return ModelCard(
        name=recipe.name,
        branches=tuple(m.branches),
        backbones={b: m.backbones[b] for b in m.branches},
        fusion=m.fusion,
        image_size=tuple(d.image_size),
        body_size=tuple(d.body_size),
        mean=tuple(d.mean),
        std=tuple(d.std),
        vad=m.vad,
    )
