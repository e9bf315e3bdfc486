"""The model-file layer: what an emoedge file is and how to read its description, below export and backends.

Why a layer of its own: exporting a model and running one read the same files (checkpoints, ONNX graphs, engines
and their sidecars) and ask the same questions of them (whose card, which precision, which TensorRT). Kept here,
below both, `backends` never imports `export` and neither imports `training` (after mmdeploy's backend managers).

    checkpoint  training checkpoints: write atomically, read with weights_only, rebuild the network
    onnx        emoedge ONNX files: parse, card in metadata_props, stored precision and INT8 placement
    engine      TensorRT engine sidecars: the card and what the engine was built with, checked against the file
    tensorrt    importing TensorRT, its version rules, the GPU it builds for, the one process-wide logger
"""

from __future__ import annotations

from pathlib import Path

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError

CHECKPOINT_SUFFIXES = (".pt", ".pth")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan")


def read_card(path: str | Path) -> ModelCard:
    """The model card of any emoedge model file, chosen by its suffix; one EmoedgeError line for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        from emoedge.formats.checkpoint import read_checkpoint_card

        return read_checkpoint_card(path)
    if suffix in ONNX_SUFFIXES:
        from emoedge.formats.onnx import read_onnx_card

        return read_onnx_card(path)
    if suffix in ENGINE_SUFFIXES:
        from emoedge.formats.engine import read_engine_info

        return read_engine_info(path).card
    known = [*CHECKPOINT_SUFFIXES, *ONNX_SUFFIXES, *ENGINE_SUFFIXES]
    raise EmoedgeError(f"model {path}: unknown model file type {suffix or '(no suffix)'!r}; expected one of {known}")
