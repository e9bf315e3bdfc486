"""Training throughput: data-loading images/s against training images/s, per recipe.

Why: the data loader must never be what limits training. For each recipe this measures
  - loader:  images/s the DataLoader delivers (decode + crop + augment + collate) with the recipe's workers,
  - compute: images/s of forward + backward + SGD step on batches already in memory,
and, for the sample recipe, the trainer's own end-to-end images/s over one real epoch.
Images are EMOTIC-sized (640×480) so decoding costs what it costs on the real dataset.

    python benchmarks/train_throughput.py [--recipes sample edge paper] [--batches 6] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from emoedge.bench.machine import describe, machine_line
from emoedge.bench.models import random_recipe
from emoedge.config import load_recipe
from emoedge.data.dataset import EmoticDataset
from emoedge.data.emotic import load_split
from emoedge.data.sample import write_sample
from emoedge.data.transforms import build_transform
from emoedge.fileio import atomic_write_text
from emoedge.model.net import build_model
from emoedge.resources import shipped_folder
from emoedge.training.evaluate import resolve_device
from emoedge.training.loss import EmotionLoss
from emoedge.training.trainer import train


def loader_rate(recipe, root: Path, batch: int, batches: int) -> float:
    """Images/s delivered by the training DataLoader (augmentation on, the recipe's worker count)."""
    d = recipe.data
    records = load_split(root, "train", d.format).records
    transform = build_transform(True, tuple(d.image_size), tuple(d.body_size), tuple(d.mean), tuple(d.std))
    dataset = EmoticDataset(records, root, transform)
    workers = min(d.workers, os.cpu_count() or 1)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            n += next(it)["image"].shape[0]
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - start)


def compute_rate(recipe, device: torch.device, batch: int, steps: int) -> float:
    """Images/s of forward + backward + optimiser step (AMP on CUDA), data already on the device."""
    model = build_model(recipe).to(device).train()
    criterion = EmotionLoss(recipe.loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    h, w = recipe.data.image_size
    bh, bw = recipe.data.body_size
    image, body = torch.rand(batch, 3, h, w, device=device), torch.rand(batch, 3, bh, bw, device=device)
    labels = (torch.rand(batch, 26, device=device) < 0.2).float()
    vad = torch.rand(batch, 3, device=device) * 9 + 1
    amp = device.type == "cuda" and recipe.run.amp

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            out = model(image, body)
        loss, _ = criterion(out, labels, vad)
        optimizer.zero_grad(set_to_none=True)
        (loss / batch).backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def end_to_end_rate(tmp: Path) -> float:
    """The trainer's own images/s (loader and compute together) over 2 epochs of the sample recipe."""
    recipe = load_recipe(shipped_folder("recipe") / "sample.yaml", ["optim.epochs=2"])
    train(recipe, tmp / "run", data_root=write_sample(tmp / "small"), progress=False)
    with open(tmp / "run" / "metrics.csv", newline="") as handle:
        return max(float(row["images_per_s"]) for row in csv.DictReader(handle))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["sample", "edge", "paper"])
    parser.add_argument("--batches", type=int, default=6, help="batches timed per measurement")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_sample(Path(tmp) / "data", image_size=(640, 480))
        for name in args.recipes:
            recipe = random_recipe(name)  # no downloads: throughput does not depend on the initial weights
            batch = recipe.optim.batch_size if gpu or name == "sample" else 8
            row = {
                "recipe": name,
                "backbones": "/".join(recipe.model.backbones[b] for b in recipe.model.branches),
                "input": f"{recipe.data.image_size[0]}² / {recipe.data.body_size[0]}²",
                "batch": batch,
                "workers": min(recipe.data.workers, os.cpu_count() or 1),
                "loader_img_s": loader_rate(recipe, root, batch, args.batches),
                "train_img_s": compute_rate(
                    recipe, device, batch, max(2, args.batches // (1 if gpu or name == "sample" else 3))
                ),
            }
            if name == "sample":
                row["end_to_end_img_s"] = end_to_end_rate(Path(tmp))
            row["loader_headroom"] = row["loader_img_s"] / row["train_img_s"]
            rows.append(row)
            print(json.dumps(row))
    machine = describe()
    device_name = (
        torch.cuda.get_device_name(device) if gpu else f"CPU ({machine['cpu']}, {machine['torch_threads']} threads)"
    )
    meta = {"device": device_name, "machine": machine}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"train_throughput_{'gpu' if gpu else 'cpu'}"
    atomic_write_text(args.out / f"{stem}.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"# Training throughput — {device_name}",
        "",
        f"{machine_line(machine, ('torch', 'torchvision'))}.",
        "Loader: training DataLoader with augmentation on 640×480 JPEGs (EMOTIC-sized), the recipe's worker count.",
        "Train: forward + backward + SGD step on in-memory batches" + (" with AMP." if gpu else " (FP32, CPU)."),
        "Headroom = loader ÷ train: above 1 the loader is not the bottleneck.",
        "",
        "| recipe | backbones (body/place/scene) | image² / body² | batch | workers | loader img/s | train img/s | headroom | end-to-end img/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        e2e = f"{r['end_to_end_img_s']:.1f}" if "end_to_end_img_s" in r else "–"
        lines.append(
            f"| {r['recipe']} | {r['backbones']} | {r['input']} | {r['batch']} | {r['workers']} | {r['loader_img_s']:.1f} | "
            f"{r['train_img_s']:.1f} | {r['loader_headroom']:.1f}× | {e2e} |"
        )
    atomic_write_text(args.out / f"{stem}.md", "\n".join(lines) + "\n")
    print(f"written {args.out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
