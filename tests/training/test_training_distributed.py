"""DistributedDataParallel details of the training loop: one all-reduce per optimiser step, the GPU chosen first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from cli_helpers import REPO  # type: ignore[import-not-found]
from torch.nn.parallel import DistributedDataParallel

from emoedge.config import load_recipe
from emoedge.model.net import build_model
from emoedge.training import trainer
from emoedge.training.loss import EmotionLoss

SAMPLE = REPO / "train" / "sample.yaml"


@pytest.fixture
def gloo_group(tmp_path: Path):
    """A real one-process gloo group, destroyed afterwards."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _batch(persons: int) -> dict[str, torch.Tensor]:
    """A micro-batch of the sample recipe's shapes (96×96 images, 64×64 bodies, 26 categories)."""
    return {
        "image": torch.rand(persons, 3, 96, 96),
        "body": torch.rand(persons, 3, 64, 64),
        "labels": (torch.rand(persons, 26) > 0.8).float(),
        "vad": torch.rand(persons, 3) * 10,
    }


def _synced_micro_batches(accumulate: int, micro_batches: int) -> list[int]:
    """Train a real DDP model with the trainer's own micro-step; the micro-batches whose backward all-reduced."""
    recipe = load_recipe(SAMPLE)
    torch.manual_seed(0)
    ddp = DistributedDataParallel(build_model(recipe))
    reduces = []

    def count(state, bucket):  # unannotated: DDP rejects the string annotations of `from __future__`
        reduces.append(bucket.index())
        done: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        done.set_result(bucket.buffer())  # one process: the sum is its own gradients
        return done

    ddp.register_comm_hook(None, count)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    step = trainer._MicroStep(
        ddp, EmotionLoss(recipe.loss), optimizer, torch.amp.GradScaler("cuda", enabled=False), torch.device("cpu"),
        False, 1 / 8,
    )  # fmt: skip
    synced = []
    for i in range(micro_batches):
        before = len(reduces)
        step(_batch(4), trainer._ends_step(i, accumulate, micro_batches))
        if len(reduces) > before:
            synced.append(i)
    return synced


def test_ddp_all_reduces_once_per_optimiser_step_when_accumulating(gloo_group):
    assert _synced_micro_batches(accumulate=4, micro_batches=8) == [3, 7]


def test_ddp_without_accumulation_all_reduces_every_micro_batch(gloo_group):
    assert _synced_micro_batches(accumulate=1, micro_batches=3) == [0, 1, 2]


def test_an_epoch_ending_mid_step_still_steps_on_its_last_micro_batch():
    assert [i for i in range(6) if trainer._ends_step(i, 4, 6)] == [3, 5]


def test_ddp_on_cuda_sets_each_ranks_gpu_before_creating_the_nccl_group(monkeypatch):
    """The order of the calls only: CUDA and the group are replaced by recorders (no GPU here, no NCCL run)."""
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(
        dist, "init_process_group", lambda backend, **kw: calls.append(("group", backend, kw.get("device_id")))
    )
    ctx, device = trainer._start("auto")
    assert (ctx.rank, ctx.world, device) == (1, 2, torch.device("cuda", 1))
    assert calls == [("set_device", torch.device("cuda", 1)), ("group", "nccl", torch.device("cuda", 1))]


def test_ddp_on_cpu_creates_a_gloo_group_and_touches_no_gpu(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(("group", backend, kw)))
    _, device = trainer._start("cpu")
    assert device == torch.device("cpu") and calls == [("group", "gloo", {})]
