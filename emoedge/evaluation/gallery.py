"""A Figure-1 gallery for an evaluation report: a few test persons explained (Grad-CAM per branch, modality weights,
top categories against the annotation), so that a report shows where the model looked, not only how well it did.

Why only for checkpoints: Grad-CAM needs the network's gradients, which ONNX files and engines do not carry; their
reports say so instead. Persons are chosen evenly through the split (deterministic), one per image at most.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from emoedge.categories import CATEGORIES
from emoedge.data.dataset import checked_records, read_image
from emoedge.data.emotic import image_path
from emoedge.formats import CHECKPOINT_SUFFIXES

GALLERY_PERSONS = 8
FOLDER = "gallery"


def gallery_note(model: Path | str) -> str | None:
    """Why a report has no gallery (None: it can have one)."""
    if Path(model).suffix.lower() not in CHECKPOINT_SUFFIXES:
        return "explanations need the checkpoint (Grad-CAM needs gradients, which ONNX files and engines lack)"
    if importlib.util.find_spec("captum") is None:
        return "explanations need Captum: pip install 'emoedge[explain]'"
    return None


def write_gallery(out_dir: Path, checkpoint: Path, root: Path, split: str, count: int = GALLERY_PERSONS) -> list[Path]:
    """Explain `count` persons of `split` spread through it; their figures go to `out_dir`/gallery/."""
    from emoedge.explain.cam import explain_person
    from emoedge.explain.figure import draw_explanation
    from emoedge.formats.checkpoint import load_trained_model

    net, card, _ = load_trained_model(checkpoint)
    records = checked_records(Path(root), split)
    firsts = list({(r.folder, r.filename): r for r in reversed(records)}.values())[::-1]  # first person per image
    chosen = [firsts[int(i)] for i in np.linspace(0, len(firsts) - 1, min(count, len(firsts)))]
    written = []
    for number, record in enumerate(chosen, start=1):
        pixels = read_image(image_path(Path(root), record))
        explanation = explain_person(net, card, pixels, record.bbox)
        truth = [c for c, hot in zip(CATEGORIES, record.multi_hot()) if hot]
        out = Path(out_dir) / FOLDER / f"{number:02d}-{Path(record.filename).stem}.png"
        written.append(draw_explanation(pixels, explanation, out, truth=truth, source=record.filename))
    return written
