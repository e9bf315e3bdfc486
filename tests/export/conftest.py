"""Fixtures: tiny trained-looking checkpoints (random weights, the sample recipe's sizes) and their ONNX exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoedge.bench.models import random_checkpoint
from emoedge.export.onnx import ExportResult, export_onnx

# name -> overrides of the sample recipe's model (body, place and scene branches, attention fusion, VAD)
MODELS: dict[str, dict] = {
    "full": {},
    "body_place": {"branches": ["body", "place"], "vad": False},
    "concat": {"branches": ["body", "scene"], "fusion": "concat"},
    "body_only": {"branches": ["body"]},  # reads neither `image` nor `frame`: the exporter would drop both
}


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ExportResult]]:
    """Each model of MODELS as (checkpoint, export result), exported once per session."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, overrides in MODELS.items():
        checkpoint = random_checkpoint(root / f"{name}.pt", **overrides)
        out[name] = (checkpoint, export_onnx(checkpoint, root / f"{name}.onnx"))
    return out
