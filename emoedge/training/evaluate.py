"""Validation during training: the network in memory over a split, batched by person.

Why apart from `emoedge.evaluation.evaluate`: training validates the module it is training, in batches of persons and
with AMP on CUDA, every epoch; model files (any format) are evaluated there, image by image. Both give the same
`Predictions`, scored by the same metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from emoedge.config import Recipe
from emoedge.data.dataset import EmoticDataset, checked_records, die_with_parent
from emoedge.data.transforms import build_transform
from emoedge.devices import TORCH_KINDS, parse_device, spelled
from emoedge.errors import EmoedgeError
from emoedge.evaluation.evaluate import Predictions


def resolve_device(name: str = "auto", key: str = "device") -> torch.device:
    """A training device (auto, cpu or cuda[:K]): 'auto' picks CUDA when present; a CUDA device this machine lacks is
    one line naming `key`, not torch's driver traceback when the first tensor moves."""
    cuda = torch.cuda.is_available()
    device = parse_device(name, key, kinds=TORCH_KINDS).resolve(cuda)
    found = torch.cuda.device_count() if cuda else 0
    if device.kind == "cuda" and (device.index or 0) >= found:
        raise EmoedgeError(f"{key} {name!r}: this machine has {found} CUDA device(s); expected {spelled(TORCH_KINDS)}")
    return torch.device(device.torch_device)


def eval_loader(recipe: Recipe, root: Path, split: str, *, batch_size: int, workers: int) -> DataLoader:
    """A deterministic, unaugmented loader over one split."""
    d = recipe.data
    records = checked_records(root, split, d.format)
    transform = build_transform(False, tuple(d.image_size), tuple(d.body_size), tuple(d.mean), tuple(d.std))
    dataset = EmoticDataset(records, root, transform, seed=recipe.run.seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, worker_init_fn=die_with_parent
    )


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
