"""`emoedge run --explain-every K --explain-dir DIR`: every K-th frame of a run, one Figure-1 image per person.

Why a model of its own: Grad-CAM differentiates the FP32 checkpoint, while the run's backend may hold the same
weights cast to BF16/FP16 under `inference_mode` (no gradients); so the explainer loads the checkpoint once, apart.
Why every K-th frame, never every frame: one explanation costs one forward and one backward pass per branch plus
drawing the figure (about a second on a CPU), far more than tagging the frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emoedge.explain.cam import explain_person
from emoedge.explain.figure import draw_explanation
from emoedge.explain.person import load_checkpoint, require_checkpoint
from emoedge.fileio import output_folder
from emoedge.settings import checked


class FrameExplainer:
    """Writes DIR/<stream>/frame<index>-track<id>.png for every person of every `every`-th frame (frames 0, K, 2K,
    ... of each stream); one loaded checkpoint serves every stream of a run."""

    def __init__(self, model: Path, every: int, folder: Path) -> None:
        every = checked(int, every, "explain_every", low=1)  # explain every k-th frame
        require_checkpoint(model, "--explain-every: explanations")
        self.folder = output_folder(Path(folder), "explanation folder")
        self.net, self.card = load_checkpoint(model)
        self.every = every
        self.written = 0

    def due(self, index: int) -> bool:
        """Whether frame `index` (0-based) is explained."""
        return index % self.every == 0

    def __call__(
        self, index: int, pixels: np.ndarray, boxes: np.ndarray, ids: np.ndarray, name: str = "", stream: str = ""
    ) -> int:
        """Explain each person (`boxes` [N,4] pixels, `ids` [N] track ids) of frame `index` (RGB `pixels`) of
        `stream` (its sub-folder); the number of images written."""
        folder = self.folder / stream if stream else self.folder
        folder.mkdir(exist_ok=True)
        for box, track in zip(boxes, ids):
            explanation = explain_person(self.net, self.card, pixels, box.tolist())
            out = folder / f"frame{index:06d}-track{int(track)}.png"
            draw_explanation(pixels, explanation, out, source=f"{name} frame {index}, track {int(track)}".strip())
            self.written += 1
        return len(boxes)
