"""Fixtures: tiny trained-looking checkpoints (random weights, the sample recipe's sizes) and their ONNX exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_helpers import MODELS, write_checkpoint  # type: ignore[import-not-found]

from emoedge.export.onnx import ExportResult, export_onnx


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ExportResult]]:
    """Each model of MODELS as (checkpoint, export result), exported once per session."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, (branches, fusion, vad) in MODELS.items():
        checkpoint = write_checkpoint(root / f"{name}.pt", branches, fusion=fusion, vad=vad)
        out[name] = (checkpoint, export_onnx(checkpoint, root / f"{name}.onnx"))
    return out
