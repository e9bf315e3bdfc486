"""Running a model over a split and scoring it (SPEC §6): per-category AP, mAP, thresholds, VAD MAE, weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from emoedge.card import ModelCard
from emoedge.config import Recipe
from emoedge.data.dataset import EmoticDataset, checked_records
from emoedge.data.transforms import build_transform
from emoedge.evaluation import metrics


@dataclass(frozen=True)
class Predictions:
    """Model outputs over a split, as numpy arrays aligned by person."""

    scores: np.ndarray  # [N,26] sigmoid of the fused logits
    labels: np.ndarray  # [N,26] multi-hot
    vad: np.ndarray | None  # [N,3] predicted, when the model has a VAD head
    vad_true: np.ndarray  # [N,3]
    weights: np.ndarray | None  # [N,K] modality weights, for attention fusion


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def eval_loader(recipe: Recipe, root: Path, split: str, *, batch_size: int, workers: int) -> DataLoader:
    """A deterministic, unaugmented loader over one split."""
    d = recipe.data
    records = checked_records(root, split, d.format)
    transform = build_transform(False, tuple(d.image_size), tuple(d.body_size), tuple(d.mean), tuple(d.std))
    dataset = EmoticDataset(records, root, transform, seed=recipe.run.seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, device: torch.device, *, progress: bool = False) -> Predictions:
    """Scores, labels, VAD and modality weights for every person the loader yields."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {"scores": [], "labels": [], "vad": [], "vad_true": [], "weights": []}
    amp = device.type == "cuda"
    for batch in tqdm(loader, desc="predict", leave=False, disable=not progress):
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            out = model(batch["image"].to(device, non_blocking=True), batch["body"].to(device, non_blocking=True))
        parts["scores"].append(torch.sigmoid(out["logits"].float()).cpu().numpy())
        parts["labels"].append(batch["labels"].numpy())
        parts["vad_true"].append(batch["vad"].numpy())
        if out["vad"] is not None:
            parts["vad"].append(out["vad"].float().cpu().numpy())
        if out["weights"] is not None:
            parts["weights"].append(out["weights"].float().cpu().numpy())
    joined = {k: np.concatenate(v) if v else None for k, v in parts.items()}
    return Predictions(**joined)


@dataclass(frozen=True)
class Scores:
    """The numbers of one evaluation."""

    aps: np.ndarray
    m_ap: float
    precision: np.ndarray
    recall: np.ndarray
    vad_mae: np.ndarray | None


def score(pred: Predictions, thresholds: np.ndarray) -> Scores:
    """AP per category, mAP, precision/recall at the given thresholds, VAD MAE."""
    aps = metrics.average_precisions(pred.scores, pred.labels)
    precision, recall = metrics.precision_recall_at(pred.scores, pred.labels, thresholds)
    vad_mae = metrics.vad_mae(pred.vad, pred.vad_true) if pred.vad is not None else None
    return Scores(aps, metrics.mean_ap(aps), precision, recall, vad_mae)


def evaluate_checkpoint(
    checkpoint: Path,
    root: Path,
    *,
    split: str = "test",
    out_dir: Path | None = None,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Scores, ModelCard, dict[str, Path]]:
    """Evaluate a checkpoint on a split; write the report (Table 1, JSON, plots) when `out_dir` is given."""
    from emoedge.evaluation.report import write_report
    from emoedge.formats.checkpoint import load_trained_model

    dev = resolve_device(device)
    model, card, recipe = load_trained_model(checkpoint, dev)
    loader = eval_loader(recipe, root, split, batch_size=batch_size, workers=workers)
    pred = predict(model, loader, dev, progress=progress)
    thresholds = np.asarray(card.thresholds)
    result = score(pred, thresholds)
    paths: dict[str, Path] = {}
    if out_dir is not None:
        paths = write_report(
            out_dir,
            aps=result.aps,
            m_ap=result.m_ap,
            thresholds=thresholds,
            precision=result.precision,
            recall=result.recall,
            vad_mae=result.vad_mae,
            weights=pred.weights,
            branches=card.branches,
            split=split,
            model_name=card.name,
            extra={"checkpoint": str(checkpoint), "persons": int(len(pred.scores))},
        )
    return result, card, paths
