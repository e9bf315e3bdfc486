"""Backbone pretraining on an image-classification folder (`emoedge pretrain --branch place|scene`).

Why: the place branch wants a Places365-style backbone and the scene-gist branch one trained on an emotion-image
dataset (StockEmotion in the paper); when no such checkpoint exists, this trains one from any folder of class
subfolders (torchvision ImageFolder layout). The output is written once, atomically, when training is complete, as
`{"format": "emoedge-backbone", "arch", "branch", "classes", "state_dict", ...}` of plain data and tensors, so it
loads with `weights_only=True` and `create_backbone(arch, path)` accepts it like any other weights file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from emoedge.card import IMAGENET_MEAN, IMAGENET_STD
from emoedge.data.dataset import die_with_parent
from emoedge.errors import EmoedgeError
from emoedge.fileio import atomic_torch_save, output_file
from emoedge.model.backbones import create_classifier
from emoedge.training.evaluate import resolve_device
from emoedge.training.settings import PretrainSettings

FORMAT = "emoedge-backbone"


class _Transformed(Dataset):
    """Items `indices` of an ImageFolder (decoded to PIL), passed through `transform`."""

    def __init__(self, folder: Any, indices: list[int], transform: Callable) -> None:
        self.folder, self.indices, self.transform = folder, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.folder[self.indices[i]]
        return self.transform(image), label


def pretrain_backbone(data_dir: Path, out: Path, settings: PretrainSettings = PretrainSettings()) -> Path:
    """Train a `settings.arch` classifier on the class subfolders of `data_dir`, write it to `out`, return `out`.

    SGD (momentum 0.9, weight decay 1e-4) with a per-step cosine schedule from `lr`; RandomResizedCrop and
    horizontal flip; ImageNet normalisation; mixed precision on CUDA.
    """
    s = settings
    output_file(out, "pretrained weights")  # before the images load, not after the last epoch
    folder = _image_folder(Path(data_dir))
    classes = list(folder.classes)
    train_idx, val_idx = _split(len(folder), s.val_fraction, s.seed)
    torch.manual_seed(s.seed)
    dev = resolve_device(s.device)
    train_tf, val_tf = _transforms(s.image_size)

    def loader(indices: list[int], transform: Callable, train: bool) -> DataLoader:
        return DataLoader(
            _Transformed(folder, indices, transform),
            batch_size=s.batch_size,
            shuffle=train,
            drop_last=train and len(indices) > s.batch_size,  # no size-1 tail batch for BatchNorm
            num_workers=s.workers,
            pin_memory=dev.type == "cuda",
            generator=torch.Generator().manual_seed(s.seed),
            worker_init_fn=die_with_parent,
        )

    train_loader = loader(train_idx, train_tf, True)
    val_loader = loader(val_idx, val_tf, False) if val_idx else None

    model = create_classifier(s.arch, len(classes), s.weights).to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.epochs * len(train_loader))
    amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler(dev.type, enabled=amp)
    criterion = nn.CrossEntropyLoss()
    tqdm.write(
        f"pretrain {s.arch} ({s.branch}): {len(classes)} classes, {len(train_idx)} train / {len(val_idx)} val images, "
        f"{s.epochs} epochs on {dev}"
    )

    accuracy = math.nan
    for epoch in range(1, s.epochs + 1):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{s.epochs}", leave=False, dynamic_ncols=True)
        for images, labels in bar:
            images, labels = images.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
                loss = criterion(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total, count = total + loss.item() * len(labels), count + len(labels)
            bar.set_postfix(loss=f"{total / count:.4f}")
        accuracy = _accuracy(model, val_loader, dev, amp) if val_loader else math.nan
        val = f"val accuracy {accuracy:.1%}" if val_loader else "no val images"
        tqdm.write(f"epoch {epoch}/{s.epochs}: train loss {total / max(count, 1):.4f}, {val}")

    checkpoint = {
        "format": FORMAT,
        "arch": s.arch,
        "branch": s.branch,
        "classes": classes,
        "image_size": s.image_size,
        "epochs": s.epochs,
        "val_accuracy": None if math.isnan(accuracy) else accuracy,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_torch_save(checkpoint, out)
    return Path(out)


def _image_folder(data_dir: Path) -> Any:
    from torchvision.datasets import ImageFolder

    if not data_dir.is_dir():
        raise EmoedgeError(f"pretrain data {data_dir}: not a directory (expected one subfolder of images per class)")
    try:
        folder = ImageFolder(str(data_dir))
    except (FileNotFoundError, OSError) as exc:
        raise EmoedgeError(f"pretrain data {data_dir}: {exc} (expected one subfolder of images per class)") from None
    if len(folder.classes) < 2:
        raise EmoedgeError(
            f"pretrain data {data_dir}: {len(folder.classes)} class folder(s) {folder.classes}; at least 2 are needed"
        )
    return folder


def _split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random hold-out: `val_fraction` of `n` items for validation, at least 2 left for training."""
    n_val = min(round(n * val_fraction), max(n - 2, 0))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val])


def _transforms(size: int) -> tuple[Callable, Callable]:
    from torchvision import transforms as T

    normalize = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *normalize])
    val = T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size), *normalize])
    return train, val


@torch.no_grad()
def _accuracy(model: nn.Module, loader: DataLoader, dev: torch.device, amp: bool) -> float:
    model.eval()
    correct, count = 0, 0
    for images, labels in loader:
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
            logits = model(images.to(dev, non_blocking=True))
        correct += int((logits.argmax(1).cpu() == labels).sum())
        count += len(labels)
    return correct / max(count, 1)
