"""A split as deployment sees it: one item per image, with all its annotated persons.

Why per image: a deployed model runs once per frame, its context branches on the whole image and its body branch
on every person of that frame as one batch. Evaluating any model file (checkpoint, ONNX, engine) and calibrating
INT8 therefore feed it image by image, preprocessed exactly as evaluation preprocesses one person at a time
(`PairTransform(train=False)`): the whole image once, and every person's crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from emoedge.card import ModelCard
from emoedge.data.dataset import checked_records, read_image
from emoedge.data.emotic import image_path
from emoedge.data.records import PersonRecord
from emoedge.data.transforms import PairTransform


@dataclass(frozen=True, eq=False)
class ImageItem:
    """One image of a split: `image` [1,3,H,W], `body` [N,3,h,w] float32, labels [N,26] and VAD [N,3] per person."""

    image: np.ndarray
    body: np.ndarray
    labels: np.ndarray
    vad: np.ndarray


class ImageFrames(Dataset):
    """The images of a split in annotation order, persons grouped under their image; decoded when indexed."""

    def __init__(self, root: Path, split: str, card: ModelCard, fmt: str = "auto") -> None:
        self.root = Path(root)
        grouped: dict[Path, list[PersonRecord]] = {}
        for record in checked_records(self.root, split, fmt):
            grouped.setdefault(image_path(self.root, record), []).append(record)
        self.images = list(grouped.items())
        self.persons = sum(len(persons) for _, persons in self.images)
        self.transform = PairTransform(False, card.image_size, card.body_size, card.mean, card.std)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> ImageItem:
        path, persons = self.images[i]
        pixels = read_image(path)
        pairs = [self.transform(pixels, person.bbox) for person in persons]
        return ImageItem(
            image=pairs[0][0].numpy()[None],
            body=torch.stack([crop for _, crop in pairs]).numpy(),
            labels=np.stack([person.multi_hot() for person in persons]),
            vad=np.asarray([person.vad for person in persons], np.float32),
        )
