"""One evaluator for every model file: a checkpoint, any emoedge ONNX (FP32, FP16, INT8 for TensorRT or for CPUs)
or a TensorRT engine, run through `load_model` image by image, scored the same way (SPEC §6).

Why through the backends: the file a user deploys is the file that must be measured, on the backend that will run
it; one code path computes AP and mAP whatever produced the scores (after Ultralytics' validator, one over every
export format). Each image is one engine call with all its persons, as in deployment, at the precision `run` would
use (`load_model`'s rule: a checkpoint in FP32 unless another is asked for; ONNX files and engines as stored).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader
from tqdm import tqdm

from emoedge.backends import Backend, is_url, load_model
from emoedge.card import ModelCard
from emoedge.categories import BRANCHES
from emoedge.data.dataset import die_with_parent
from emoedge.data.frames import ImageFrames, ImageItem
from emoedge.evaluation import metrics
from emoedge.settings import checked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictions:
    """Model outputs over a split, as numpy arrays aligned by person."""

    scores: np.ndarray  # [N,26] sigmoid of the fused logits
    labels: np.ndarray  # [N,26] multi-hot
    vad: np.ndarray | None  # [N,3] predicted, when the model has a VAD head
    vad_true: np.ndarray  # [N,3]
    weights: np.ndarray | None  # [N,K] modality weights of the card's K branches, for attention fusion


@dataclass(frozen=True)
class Scores:
    """The numbers of one evaluation."""

    aps: np.ndarray
    m_ap: float
    precision: np.ndarray
    recall: np.ndarray
    vad_mae: np.ndarray | None


@dataclass(frozen=True)
class Evaluation:
    """What was measured (file or served model's URL, backend, precision, split) and what came out."""

    model: Path | str
    backend: str  # the backend's own account of itself (`Backend.reason`)
    precision: str
    split: str
    card: ModelCard
    predictions: Predictions
    scores: Scores
    root: Path | None = None  # the dataset it was measured on

    @property
    def m_ap(self) -> float:
        return self.scores.m_ap


def score(pred: Predictions, thresholds: np.ndarray) -> Scores:
    """AP per category, mAP, precision/recall at the given thresholds, VAD MAE."""
    aps = metrics.average_precisions(pred.scores, pred.labels)
    precision, recall = metrics.precision_recall_at(pred.scores, pred.labels, thresholds)
    vad_mae = metrics.vad_mae(pred.vad, pred.vad_true) if pred.vad is not None else None
    return Scores(aps, metrics.mean_ap(aps), precision, recall, vad_mae)


def evaluate_model(
    model: str | Path | Backend,
    root: Path,
    *,
    split: str = "test",
    device: str = "auto",
    precision: str = "auto",
    cuda_graphs: str = "auto",
    compile: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> Evaluation:
    """Run a model file over a split of an EMOTIC-layout dataset, one image per call, and score it (`cuda_graphs`,
    `compile`: a checkpoint's PyTorch execution, see `load_model`)."""
    workers = checked(int, workers, "workers", low=0)  # image-decoding processes
    options = {"device": device, "precision": precision, "cuda_graphs": cuda_graphs, "compile": compile}
    backend = model if isinstance(model, Backend) else load_model(model, **options)
    frames = ImageFrames(Path(root), split, backend.card)
    pred = predict(backend, frames, workers=workers, progress=progress)
    result = score(pred, np.asarray(backend.card.thresholds))
    path = Path(getattr(model, "path", "")) if isinstance(model, Backend) else model if is_url(model) else Path(model)
    return Evaluation(path, backend.reason, backend.precision, split, backend.card, pred, result, Path(root))


def predict(backend: Backend, frames: ImageFrames, *, workers: int = 2, progress: bool = False) -> Predictions:
    """Every person's outputs, one backend call per image (images decoded by `workers` loader processes)."""
    loader = DataLoader(
        frames, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_keep, worker_init_fn=die_with_parent
    )
    parts: dict[str, list[np.ndarray]] = {"scores": [], "labels": [], "vad": [], "vad_true": [], "weights": []}
    columns = [BRANCHES.index(b) for b in backend.card.branches]  # the report's weights are in the card's order
    # disable=None: a progress bar on a terminal only, never in logs or a captured stderr
    bar = tqdm(loader, total=len(frames), desc=f"evaluate {backend.name}", unit="image", leave=False,
               disable=None if progress else True)  # fmt: skip
    for item in bar:
        out = backend.infer(item.image, item.body)
        parts["scores"].append(out["scores"])
        parts["labels"].append(item.labels)
        parts["vad_true"].append(item.vad)
        if "vad" in out:
            parts["vad"].append(out["vad"])
        if backend.card.fusion == "attention":
            parts["weights"].append(out["modality_weights"][:, columns])
    joined = {k: np.concatenate(v) if v else None for k, v in parts.items()}
    return Predictions(**joined)


def write_evaluation(out_dir: Path, evaluation: Evaluation, *, gallery: bool = True) -> dict[str, Path]:
    """The Table-1 report of an evaluation (report.write_report), naming the file, backend and precision, and for a
    checkpoint a Figure-1 gallery of explained test persons (key "gallery": its folder)."""
    from emoedge.evaluation.gallery import FOLDER, gallery_note, write_gallery
    from emoedge.evaluation.report import EvalReport, write_report

    scores, pred = evaluation.scores, evaluation.predictions
    report = EvalReport(
        aps=scores.aps, m_ap=scores.m_ap, thresholds=np.asarray(evaluation.card.thresholds), precision=scores.precision,
        recall=scores.recall, vad_mae=scores.vad_mae, weights=pred.weights, branches=evaluation.card.branches,
        split=evaluation.split, model_name=evaluation.card.name,
        extra={"model": str(evaluation.model), "backend": evaluation.backend, "precision": evaluation.precision,
               "persons": len(pred.scores)},
    )  # fmt: skip
    paths = write_report(out_dir, report)
    if gallery and evaluation.root is not None:
        note = gallery_note(evaluation.model)
        if note is None:
            write_gallery(Path(out_dir), evaluation.model, evaluation.root, evaluation.split)
            paths["gallery"] = Path(out_dir) / FOLDER
        else:
            log.info("no Figure-1 gallery in %s: %s", out_dir, note)
    return paths


def _keep(item: ImageItem) -> ImageItem:
    """The loader's collate function: an image item is already one call's inputs."""
    return item
