"""The training loop: epochs, validation, checkpoints, exact resume, DistributedDataParallel.

Why each epoch is reseeded from (seed, epoch, rank): an epoch's shuffling, augmentation (seeded per item by the
dataset) and dropout then depend on nothing but the epoch number, so a run killed anywhere and resumed from the
last end-of-epoch checkpoint redoes the interrupted epoch bit for bit and ends with the same weights as an
uninterrupted run.

The optimiser sees the discrete loss of SPEC §3 (summed over categories and the batch) divided by the global batch
size, so the learning rate means the same whatever the batch, accumulation or number of processes. Under DDP the
micro-batches before the last of an optimiser step run in `no_sync`: their gradients are summed locally and the last
backward all-reduces the sum, once per step rather than once per micro-batch.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from emoedge.config import Recipe, recipe_from_dict
from emoedge.data.dataset import EmoticDataset, checked_records, die_with_parent
from emoedge.data.transforms import build_transform
from emoedge.errors import EmoedgeError
from emoedge.evaluation import metrics
from emoedge.fileio import atomic_write_text, keep_outputs, output_folder, remove_stale_temps
from emoedge.formats.checkpoint import read_checkpoint, save_checkpoint
from emoedge.model.net import build_model, card_for
from emoedge.training.evaluate import eval_loader, predict, resolve_device
from emoedge.training.loss import EmotionLoss, dataset_category_weights

LAST, BEST = "last.pt", "best.pt"


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    last: Path
    best: Path
    best_map: float
    epochs_done: int


@dataclass(frozen=True)
class _Dist:
    """This process's place in a torchrun job (world 1 when not launched by torchrun)."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def _start(device_name: str) -> tuple[_Dist, torch.device]:
    """This process's place in the job and its device, made current BEFORE the process group is created: NCCL
    creates its communicator on the current GPU, so a group created first puts every rank's context on GPU 0."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ctx = _Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = _device(device_name, ctx)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)  # bound to this rank's GPU, formed now
        else:
            dist.init_process_group("gloo")
    return ctx, device


def _device(name: str, ctx: _Dist) -> torch.device:
    device = resolve_device(name, "run.device")
    if device.type == "cuda" and ctx.world > 1:
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    return device


def _ends_step(step: int, accumulate: int, steps: int) -> bool:
    """Whether micro-batch `step` (0-based, of `steps` in the epoch) is the last of its optimiser step."""
    return (step + 1) % accumulate == 0 or step + 1 == steps


@dataclass(frozen=True)
class _MicroStep:
    """Forward and backward of one micro-batch, and the optimiser step after the last micro-batch of each step."""

    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    criterion: EmotionLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: bool
    loss_scale: float  # processes / global batch: see the module docstring

    def __call__(self, batch: dict[str, torch.Tensor], last: bool) -> tuple[int, dict[str, float]]:
        """Persons in `batch` and its loss terms; `last`: the micro-batch that ends an optimiser step."""
        labels = batch["labels"].to(self.device, non_blocking=True)
        with self._synced(last):  # DDP prepares its all-reduce in forward: both run inside
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                outputs = self.net(
                    batch["image"].to(self.device, non_blocking=True), batch["body"].to(self.device, non_blocking=True)
                )
            loss, parts = self.criterion(outputs, labels, batch["vad"].to(self.device, non_blocking=True))
            self.scaler.scale(loss * self.loss_scale).backward()
        if last:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        return labels.shape[0], parts

    def _synced(self, last: bool) -> AbstractContextManager:
        """DDP's `no_sync` on every micro-batch but the last of a step (gradients summed locally until then)."""
        if isinstance(self.net, DistributedDataParallel) and not last:
            return self.net.no_sync()
        return nullcontext()


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


def _history_csv(history: list[dict]) -> str:
    buffer = io.StringIO()
    keys = list(dict.fromkeys(k for row in history for k in row))
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _check_resumable(saved: dict, recipe: Recipe, path: Path) -> None:
    """A resumed run must train the same model on the same data; only the epoch count may grow."""
    before = recipe_from_dict(saved["recipe"]).to_dict()
    now = recipe.to_dict()
    for section in ("model", "data", "loss", "run"):
        if before[section] != now[section]:
            raise EmoedgeError(f"--resume {path}: the recipe's '{section}' section differs from the checkpoint's")
    done = saved["epoch"] + 1
    if recipe.optim.epochs < done:
        raise EmoedgeError(
            f"--resume {path}: optim.epochs {recipe.optim.epochs} is below the {done} epochs already trained; "
            f"expected optim.epochs >= {done}"
        )


def train(
    recipe: Recipe,
    out_dir: Path,
    *,
    data_root: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train `recipe` into `out_dir` (last.pt, best.pt, metrics.csv, tensorboard/, recipe.yaml).

    `on_step(epoch, step)` is called after every micro-batch (0-based epoch and step): a hook for progress
    reporting and for tests that need to act at an exact point of a run.
    """
    root = Path(data_root or recipe.data.root or "")
    if not str(root):
        raise EmoedgeError("no dataset: give --data DIR or set data.root in the recipe")
    out_dir = output_folder(out_dir, "run folder")  # before the data loads and the model builds, not after an epoch
    last_path, best_path = out_dir / LAST, out_dir / BEST
    if last_path.exists() and not resume:
        raise EmoedgeError(
            f"{out_dir} already holds a training run; pass --resume to continue it or choose another --out"
        )

    ctx, device = _start(recipe.run.device)
    if ctx.main and (stale := remove_stale_temps(out_dir)):  # a run killed while writing a checkpoint left them
        tqdm.write(f"removed {len(stale)} temporary file(s) a stopped run left in {out_dir}")
    o, d = recipe.optim, recipe.data
    micro = o.batch_size // (o.accumulate * ctx.world)
    if micro < 1:
        raise EmoedgeError(
            f"optim.batch_size {o.batch_size} is too small for accumulate {o.accumulate} × {ctx.world} processes"
        )

    train_records = checked_records(root, "train", d.format)
    transform = build_transform(d.augment, tuple(d.image_size), tuple(d.body_size), tuple(d.mean), tuple(d.std))
    train_set = EmoticDataset(train_records, root, transform, seed=recipe.run.seed)
    sampler = DistributedSampler(train_set, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=recipe.run.seed)
    drop_last = len(train_set) // ctx.world >= micro
    val_loader = eval_loader(recipe, root, "val", batch_size=micro, workers=d.workers) if ctx.main else None

    torch.manual_seed(recipe.run.seed)  # the same initial weights on every process and every run
    model = build_model(recipe).to(device)
    card = card_for(recipe)
    fixed = None
    if recipe.loss.mode == "fixed":
        fixed = dataset_category_weights(
            torch.from_numpy(np.stack([r.multi_hot() for r in train_records])), recipe.loss.c
        )
    criterion = EmotionLoss(recipe.loss, fixed_weights=fixed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=o.milestones, gamma=o.gamma)
    use_amp = recipe.run.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, best_map, history = 0, float("-inf"), []
    if resume and last_path.exists():
        saved = read_checkpoint(last_path)
        _check_resumable(saved, recipe, last_path)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        start_epoch, best_map, history = saved["epoch"] + 1, saved["best_map"], list(saved["history"])
        if ctx.main:
            tqdm.write(f"resuming {out_dir} after epoch {start_epoch} of {o.epochs}")
    elif resume and ctx.main:
        tqdm.write(f"nothing to resume in {out_dir}: starting a new run")

    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if ctx.world > 1
        else model
    )
    writer = None
    if ctx.main:
        from torch.utils.tensorboard import SummaryWriter

        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "recipe.yaml", _recipe_yaml(recipe))
        writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_epoch + 1)

    micro_step = _MicroStep(net, criterion, optimizer, scaler, device, use_amp, ctx.world / o.batch_size)
    try:
        for epoch in range(start_epoch, o.epochs):
            _seed_epoch(recipe.run.seed, epoch, ctx.rank)
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            loader = DataLoader(
                train_set,
                batch_size=micro,
                sampler=sampler,
                num_workers=d.workers,
                drop_last=drop_last,
                pin_memory=device.type == "cuda",
                worker_init_fn=die_with_parent,
            )
            net.train()
            sums: dict[str, float] = {}
            seen = 0
            started = time.perf_counter()
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{o.epochs}", disable=not (progress and ctx.main), leave=False)
            optimizer.zero_grad(set_to_none=True)
            for step, batch in enumerate(bar):
                n, parts = micro_step(batch, _ends_step(step, o.accumulate, len(loader)))
                seen += n
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value
                bar.set_postfix(loss=f"{sums['total'] / seen:.3f}")
                if on_step is not None:
                    on_step(epoch, step)
            scheduler.step()
            row = {
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                "images_per_s": seen * ctx.world / (time.perf_counter() - started),
            }
            row.update({f"train_{k}": v / max(seen, 1) for k, v in sums.items()})
            if ctx.main:
                best_map = _validate_and_save(
                    model,
                    val_loader,
                    device,
                    card,
                    recipe,
                    row,
                    history,
                    best_map,
                    {
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                    },
                    epoch,
                    out_dir,
                    writer,
                    progress,
                )
            if ctx.world > 1:
                dist.barrier()
    finally:
        if writer is not None:
            writer.close()
        if ctx.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return TrainResult(out_dir, last_path, best_path, best_map, len(history))


def _validate_and_save(
    model: torch.nn.Module,
    val_loader: DataLoader,
    device: torch.device,
    card,
    recipe: Recipe,
    row: dict,
    history: list[dict],
    best_map: float,
    optim_state: dict,
    epoch: int,
    out_dir: Path,
    writer,
    progress: bool,
) -> float:
    """Score the epoch on the validation split, log it, write best.pt (when mAP improved) and then last.pt.

    last.pt is written last: it is what a resumed run starts from, so a run killed before it redoes this epoch and
    rewrites everything before it identically, and best.pt never lags behind the `best_map` that last.pt records.
    """
    pred = predict(model, val_loader, device)
    aps = metrics.average_precisions(pred.scores, pred.labels)
    row["val_map"] = metrics.mean_ap(aps)
    epoch_card = card.with_thresholds(metrics.pr_equal_thresholds(pred.scores, pred.labels))
    improved = row["val_map"] > best_map
    best_map = max(best_map, row["val_map"])
    history.append(row)
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "recipe": recipe.to_dict(),
        "card": epoch_card.to_dict(),
        "val_map": row["val_map"],
        "best_map": best_map,
        "history": history,
    }
    if improved:
        save_checkpoint(out_dir / BEST, state)
    atomic_write_text(out_dir / "metrics.csv", _history_csv(history))
    for key, value in row.items():
        if key != "epoch":
            writer.add_scalar(key, value, epoch + 1)
    writer.flush()
    save_checkpoint(out_dir / LAST, {**state, **optim_state})
    keep_outputs()  # a checkpoint to resume from: the run folder stays, whatever happens next
    if progress:
        tqdm.write(
            f"epoch {epoch + 1}/{recipe.optim.epochs}  loss {row.get('train_total', float('nan')):.4f}  "
            f"val mAP {100 * row['val_map']:.2f}{'  (best)' if improved else ''}  {row['images_per_s']:.0f} img/s"
        )
    return best_map


def _recipe_yaml(recipe: Recipe) -> str:
    import yaml

    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
