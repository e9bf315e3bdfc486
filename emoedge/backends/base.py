"""The one interface every inference backend offers, and the input checks they share.

Why checks here: a wrong crop size or a batch of frames reaches TensorRT or ONNX Runtime as an opaque failure deep
inside the engine; checked up front against the model card, it is one line naming the input and both shapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from emoedge.card import ModelCard
from emoedge.categories import BRANCHES, NUM_CATEGORIES
from emoedge.errors import EmoedgeError


class Backend(ABC):
    """A loaded model: `infer(image [1,3,H,W], body [N,3,h,w])` → {"scores", "modality_weights"[, "vad"]} arrays.

    Inputs are preprocessed float arrays or torch tensors (the card says the sizes and normalisation). `reason`
    tells users why this backend, device and precision were chosen.
    """

    name: str
    card: ModelCard
    device: str
    precision: str
    reason: str

    @property
    def input_device(self) -> str:
        """Where inputs should live to avoid a copy: the model's device (ONNX Runtime overrides: host arrays)."""
        return self.device

    def infer(self, image: Any, body: Any) -> dict[str, np.ndarray]:
        """Scores [N,26], modality weights [N,3] (body, place, scene gist) and, if the model has it, VAD [N,3]."""
        persons = self.check_inputs(image, body)
        if persons == 0:
            return self.empty_outputs()
        return self._infer(image, body)

    @abstractmethod
    def _infer(self, image: Any, body: Any) -> dict[str, np.ndarray]:
        """Run the model on inputs already checked against the card (N >= 1); float32 numpy outputs."""

    def check_inputs(self, image: Any, body: Any) -> int:
        """The person count N; a wrong shape is an EmoedgeError naming the input, its shape and the expected one."""
        _check_shape("image", image, (1, 3, *self.card.image_size))
        return _check_shape("body", body, (None, 3, *self.card.body_size))

    def empty_outputs(self) -> dict[str, np.ndarray]:
        """Outputs for a frame without persons, without running the model."""
        out = {
            "scores": np.zeros((0, NUM_CATEGORIES), np.float32),
            "modality_weights": np.zeros((0, len(BRANCHES)), np.float32),
        }
        if self.card.vad:
            out["vad"] = np.zeros((0, 3), np.float32)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r}; {self.reason})"


def _check_shape(name: str, value: Any, expected: tuple[int | None, ...]) -> int:
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        want = ", ".join("N" if e is None else str(e) for e in expected)
        raise EmoedgeError(f"input {name!r}: shape {list(shape)} received, expected [{want}] (from the model card)")
    return int(shape[0])
