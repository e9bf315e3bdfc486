"""The inference form of EmotionNet: F frames and their N persons in, deployable outputs out (SPEC §7).

Why a wrapper rather than EmotionNet.forward: deployment wants plain tensors (scores after the sigmoid, modality
weights in the fixed order body, place, scene gist, VAD) and none of the training-only outputs (per-branch logits),
so that an exported graph carries exactly what the runtime reads. The context branches run once per whole frame and
are gathered per person by `frame` (the index of each person's frame), so the graph holds one context evaluation per
frame whatever N is, and one call serves the persons of several streams' frames. F = 1 with `frame` all zeros is
the single-frame case.
"""

from __future__ import annotations

import torch
from torch import nn

from emoedge.categories import BRANCHES
from emoedge.model.net import EmotionNet

OUTPUTS = ("scores", "modality_weights", "vad")


class DeployModel(nn.Module):
    """forward(image [F,3,H,W], body [N,3,h,w], frame [N] int64) -> (scores [N,26], modality_weights [N,3][, vad]).

    Modality weights are in BRANCHES order with zeros for absent branches. Concatenation fusion learns no weights:
    it reports the uniform 1/K over its K branches (the card's `fusion` says "concat", so readers know).
    """

    def __init__(self, net: EmotionNet) -> None:
        super().__init__()
        self.net = net
        self.has_vad = net.vad_head is not None
        # placement[k, j] = 1 where the model's k-th branch is BRANCHES[j]: weights @ placement is exact (×1, +0).
        placement = torch.zeros(len(net.branches), len(BRANCHES))
        for k, branch in enumerate(net.branches):
            placement[k, BRANCHES.index(branch)] = 1.0
        self.register_buffer("placement", placement, persistent=False)
        self.register_buffer("uniform", placement.mean(0, keepdim=True), persistent=False)

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUTS if self.has_vad else OUTPUTS[:2]

    def forward(self, image: torch.Tensor, body: torch.Tensor, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = body.shape[0]
        feats = {b: f.index_select(0, frame) for b, f in self.net.context_features(image).items()}
        feats["body"] = self.net.body_features(body)
        fused, weights = self.net.fusion([feats[b] for b in self.net.branches])
        scores = torch.sigmoid(self.net.head(fused))
        modality = self.uniform.expand(n, -1) if weights is None else weights @ self.placement
        if self.net.vad_head is None:
            return scores, modality
        return scores, modality, self.net.vad_head(fused)
