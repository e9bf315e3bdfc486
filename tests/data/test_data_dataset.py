"""EmoticDataset: item layout, per-item seeds independent of workers, clear errors for bad image files."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from emoedge.data.dataset import EmoticDataset, item_seed, missing_images, read_image
from emoedge.data.emotic import EmoticWarning, image_path, load_split
from emoedge.data.records import PersonRecord
from emoedge.data.transforms import build_transform
from emoedge.errors import EmoedgeError

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _records(root: Path, split: str = "train") -> list[PersonRecord]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoticWarning)
        return load_split(root, split).records


def _dataset(root: Path, records, train: bool = True, seed: int = 0) -> EmoticDataset:
    return EmoticDataset(records, root, build_transform(train, (40, 48), (32, 24), MEAN, STD), seed=seed)


def test_item_layout(sample_root: Path) -> None:
    records = _records(sample_root)
    item = _dataset(sample_root, records)[0]
    assert set(item) == {"image", "body", "labels", "vad"}
    assert item["image"].shape == (3, 40, 48) and item["body"].shape == (3, 32, 24)
    assert item["labels"].shape == (26,) and item["vad"].shape == (3,)
    assert all(t.dtype == torch.float32 for t in item.values())
    assert torch.equal(item["labels"], torch.from_numpy(records[0].multi_hot()))
    assert item["vad"].tolist() == list(records[0].vad)


def _all_batches(dataset: EmoticDataset, workers: int) -> list[dict[str, torch.Tensor]]:
    loader = DataLoader(dataset, batch_size=4, shuffle=False, num_workers=workers)
    return list(loader)


def test_items_are_identical_with_0_and_2_workers(sample_root: Path) -> None:
    dataset = _dataset(sample_root, _records(sample_root)[:16], seed=3)
    dataset.set_epoch(2)
    serial = _all_batches(dataset, 0)
    parallel = _all_batches(dataset, 2)
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    # ... and independent of the order items are asked for.
    assert torch.equal(dataset[13]["image"], serial[3]["image"][1])


def test_epoch_and_seed_select_the_augmentation(sample_root: Path) -> None:
    records = _records(sample_root)[:1]
    dataset = _dataset(sample_root, records, seed=0)
    first = dataset[0]["image"]
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0]["image"], first)
    dataset.set_epoch(0)
    assert torch.equal(dataset[0]["image"], first)
    assert not torch.equal(_dataset(sample_root, records, seed=1)[0]["image"], first)
    assert item_seed(0, 1, 2) == item_seed(0, 1, 2) != item_seed(0, 2, 1)


def test_missing_image_names_the_file(data_sample_copy: Path) -> None:
    records = _records(data_sample_copy, "val")
    path = image_path(data_sample_copy, records[0])
    path.unlink()
    with pytest.raises(EmoedgeError) as exc:
        _dataset(data_sample_copy, records, train=False)[0]
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert missing_images(records, data_sample_copy) == [str(path)]


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "emotic" / "mscoco" / "images" / "broken.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(EmoedgeError, match="unreadable") as exc:
        read_image(path)
    assert str(path) in str(exc.value)
    empty = path.with_name("empty.jpg")
    empty.touch()
    with pytest.raises(EmoedgeError, match="empty.jpg"):
        read_image(empty)


def test_images_are_decoded_as_rgb(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "red.png"
    bgr = np.zeros((4, 4, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(path), bgr)
    assert read_image(path)[0, 0].tolist() == [255, 0, 0]


def test_missing_images_finds_nothing_missing_on_the_sample(sample_root: Path) -> None:
    assert missing_images(_records(sample_root, "test"), sample_root) == []
