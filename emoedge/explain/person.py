"""`emoedge explain`: one person of an image file, or of a dataset split (with its annotation), explained and drawn.

Why checkpoints only: Grad-CAM needs the network's gradients; ONNX files and engines carry none, so for them the
answer is one line pointing at the checkpoint they were exported from.
"""

from __future__ import annotations

from pathlib import Path

from emoedge.card import ModelCard
from emoedge.categories import CATEGORIES
from emoedge.data.dataset import checked_records, read_image
from emoedge.data.emotic import image_path
from emoedge.errors import EmoedgeError
from emoedge.explain.cam import explain_person
from emoedge.explain.figure import draw_explanation
from emoedge.fileio import output_file
from emoedge.formats import CHECKPOINT_SUFFIXES
from emoedge.model.net import EmotionNet
from emoedge.settings import checked


def parse_box(text: str) -> tuple[float, float, float, float]:
    """ "x1,y1,x2,y2" → four numbers; one line naming the value otherwise (the rest is checked against the image)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise EmoedgeError(f"--box {text!r}: expected four numbers x1,y1,x2,y2 (pixels)")
    return values  # type: ignore[return-value]


def explain_image(model: Path, image: Path, box: tuple[float, ...], out: Path, category: str | None = None) -> Path:
    """The figure for the person in `box` of the image file `image`."""
    net, card = _network(model, out)
    pixels = read_image(Path(image))
    return draw_explanation(pixels, explain_person(net, card, pixels, box, category), out, source=Path(image).name)


def explain_annotated(model: Path, root: Path, split: str, index: int, out: Path, category: str | None = None) -> Path:
    """The figure for person `index` (0-based, annotation order) of a dataset split, with its annotated categories."""
    net, card = _network(model, out)
    records = checked_records(Path(root), split)
    record = records[checked(int, index, "index", low=0, high=len(records) - 1)]
    pixels = read_image(image_path(Path(root), record))
    explanation = explain_person(net, card, pixels, record.bbox, category)
    truth = [c for c, hot in zip(CATEGORIES, record.multi_hot()) if hot]
    return draw_explanation(pixels, explanation, out, truth=truth, source=record.filename)


def require_checkpoint(model: Path, what: str = "explanations") -> None:
    """One line unless `model` is a checkpoint: ONNX files and engines carry no gradients (`what` names the
    request in that line)."""
    if Path(model).suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise EmoedgeError(
            f"model {model}: {what} need the checkpoint (.pt) — Grad-CAM needs gradients, which ONNX files and "
            "engines do not carry; explain the checkpoint the file was exported from"
        )


def load_checkpoint(model: Path) -> tuple[EmotionNet, ModelCard]:
    """The FP32 network and card of checkpoint `model`."""
    from emoedge.formats.checkpoint import load_trained_model

    require_checkpoint(model)
    net, card, _ = load_trained_model(model)
    return net, card


def _network(model: Path, out: Path) -> tuple[EmotionNet, ModelCard]:
    require_checkpoint(model)
    output_file(out, "explanation image")  # before the model loads
    return load_checkpoint(model)
