"""The torch Dataset over EMOTIC person records.

Each item's augmentation seed is derived from (dataset seed, epoch, index) only, so an item is the same
whatever the number of DataLoader workers or the order they run in: a resumed run sees exactly the inputs
the interrupted one would have. Note for loaders: `set_epoch` changes this object; DataLoader workers hold
copies made when they start, so call it before iterating and do not use `persistent_workers=True`.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from emoedge.data.emotic import image_path, load_split
from emoedge.data.records import PersonRecord
from emoedge.data.transforms import PairTransform
from emoedge.errors import EmoedgeError

PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal a process gets when its parent dies


def die_with_parent(_worker_id: int = 0) -> None:
    """A loader worker's `worker_init_fn`: the worker gets SIGKILL the moment the process that started it dies
    (Linux `PR_SET_PDEATHSIG`), so a trainer killed with -9 leaves no worker behind. torch offers nothing alike: its
    workers poll `os.getppid()` only when their index queue has been idle for 5 s. Elsewhere a no-op.

    The kernel sends the signal when the *thread* that forked the worker ends; loaders are iterated on the main
    thread here. A parent that died before the `prctl` call is caught by comparing the parent's pid afterwards.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # orphaned already: the signal will never come
        os.kill(os.getpid(), signal.SIGKILL)


def read_image(path: Path) -> np.ndarray:
    """Decode an image file as (H, W, 3) uint8 RGB; EmoedgeError naming the file if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"image file not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EmoedgeError(f"image file unreadable (not a decodable image): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 64-bit seed from (seed, epoch, index); the same in every process."""
    state = np.random.SeedSequence([int(seed) % 2**64, int(epoch) % 2**64, int(index) % 2**64])
    return int(state.generate_state(1, dtype=np.uint64)[0])


class EmoticDataset(Dataset):
    """Items: {"image": [3,H,W], "body": [3,h,w], "labels": [26] multi-hot, "vad": [3]}, all float32."""

    def __init__(self, records: Sequence[PersonRecord], root: Path, transform: PairTransform, seed: int = 0) -> None:
        self.records = list(records)
        self.root = Path(root)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations the next items get."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rec = self.records[i]
        image = read_image(image_path(self.root, rec))
        whole, body = self.transform(image, rec.bbox, item_seed(self.seed, self.epoch, i))
        return {
            "image": whole,
            "body": body,
            "labels": torch.from_numpy(rec.multi_hot()),
            "vad": torch.tensor(rec.vad, dtype=torch.float32),
        }


def missing_images(records: Sequence[PersonRecord], root: Path) -> list[str]:
    """Paths (as strings, sorted, each once) of the records' image files that do not exist."""
    paths = {image_path(root, rec) for rec in records}
    return sorted(str(p) for p in paths if not p.is_file())


def undecodable_images(records: Sequence[PersonRecord], root: Path) -> list[str]:
    """Paths (sorted, each once) of the records' existing image files whose header no OpenCV decoder recognises: a
    text file named .jpg, an empty or HTML download. Headers only, so a whole release is checked in seconds."""
    paths = {image_path(root, rec) for rec in records}
    return sorted(str(p) for p in paths if p.is_file() and not cv2.haveImageReader(str(p)))


def checked_records(root: Path, split: str, fmt: str = "auto") -> list[PersonRecord]:
    """The persons of a split, after checking every image file exists and is an image: one clear error before any
    work starts, never a loader worker failing in the middle of an epoch."""
    records = load_split(root, split, fmt).records
    for problem, find in (("missing", missing_images), ("not decodable images", undecodable_images)):
        bad = find(records, root)
        if bad:
            raise EmoedgeError(f"{len(bad)} image file(s) of the {split} split {problem} under {root}; first: {bad[0]}")
    return records
