"""ModelCard: everything a deployed model file must say about itself.

Why: a checkpoint, ONNX file or engine must be enough on its own for the runtime to know the categories, the
decision thresholds and the preprocessing. The card is plain data so it survives `weights_only` loading, ONNX
`metadata_props` (as JSON) and engine sidecar files unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from emoedge import __version__, settings
from emoedge.categories import BRANCHES, CATEGORIES
from emoedge.errors import EmoedgeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCard:
    """Self-description of a trained model; sizes are (height, width), mean/std on the 0..1 scale."""

    name: str
    branches: tuple[str, ...]
    backbones: dict[str, str]
    fusion: Literal["attention", "concat"]
    image_size: tuple[int, int]
    body_size: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    vad: bool = False
    categories: tuple[str, ...] = CATEGORIES
    thresholds: tuple[float, ...] = field(default_factory=lambda: (0.5,) * len(CATEGORIES))
    version: str = __version__

    def __post_init__(self) -> None:
        if not self.branches or any(b not in BRANCHES for b in self.branches):
            raise EmoedgeError(
                f"model card: branches {list(self.branches)} must be a non-empty subset of {list(BRANCHES)}"
            )
        if self.fusion not in ("attention", "concat"):
            raise EmoedgeError(f"model card: fusion {self.fusion!r} must be 'attention' or 'concat'")
        if len(self.thresholds) != len(self.categories):
            raise EmoedgeError(f"model card: {len(self.thresholds)} thresholds for {len(self.categories)} categories")
        for key in ("image_size", "body_size"):
            size = getattr(self, key)
            if len(size) != 2 or any(int(s) < 1 for s in size):
                raise EmoedgeError(f"model card: {key} {list(size)} must be [height, width] with positive values")

    def with_thresholds(self, thresholds: Any) -> ModelCard:
        """A copy carrying per-category decision thresholds (chosen on the validation split)."""
        return replace(self, thresholds=tuple(float(t) for t in thresholds))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (lists, not tuples)."""
        return settings.to_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Rebuild a card, naming any missing, unknown or mistyped field."""
        try:
            return settings.from_dict(cls, data)
        except EmoedgeError as exc:
            message = str(exc)
            raise EmoedgeError(message if message.startswith("model card") else f"model card: {message}") from None

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise EmoedgeError(f"model card: not valid JSON ({exc.msg} at position {exc.pos})") from None
