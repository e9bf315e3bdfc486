"""Engine sidecars for tests that never build an engine: what is checked before TensorRT is touched."""

from __future__ import annotations

from typing import Any

from emoedge.card import ModelCard
from emoedge.formats.engine import EngineInfo

# A body-only model card of tiny sizes: enough for everything checked before an engine is built or run.
BODY_CARD = ModelCard(
    name="t",
    branches=("body",),
    backbones={"body": "tiny"},
    fusion="attention",
    image_size=(32, 32),
    body_size=(32, 32),
)


def engine_info(card: ModelCard, **kwargs: Any) -> EngineInfo:
    """A plausible Jetson FP16 engine's sidecar for `card`; `kwargs` replace any field."""
    values: dict[str, Any] = dict(
        card=card,
        tensorrt="10.3.0",
        gpu_name="Orin",
        compute_capability=(8, 7),
        target="jetson-orin",
        persons=(1, 4, 16),
        precision="fp16",
        strongly_typed=False,
        dla_core=None,
        engine_bytes=100,
        build_seconds=91.26,
        built_at="2026-01-01T00:00:00+00:00",
        onnx="model.onnx",
    )
    return EngineInfo(**{**values, **kwargs})
