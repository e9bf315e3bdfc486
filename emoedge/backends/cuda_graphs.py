"""One captured CUDA graph per (F, N) shape bucket around a model step: what the PyTorch and TensorRT backends replay.

Why: three ResNets are hundreds of small kernels; launched one by one from Python (PyTorch) or from an engine call,
the GPU waits on the launches: an eager call took 10–17 ms on a datacenter GPU whatever N was, the same module
captured once per shape and replayed 2–5 ms (issue 28). A graph is fixed to its shapes and buffer addresses, so a
backend that uses one is `bucketed` (base.Backend pads F and N up to powers of two) and every bucket owns static
device inputs. Why float32 static inputs with the cast inside the graph: runs hand over float32 frames and crops
(numpy or CUDA tensors), and a cast captured with the model costs no launch of its own. Why pinned host buffers: a
copy from pageable numpy memory is staged by the driver synchronously; from page-locked memory it is one DMA on the
stream. Why one packed output: the outputs (scores, modality weights, VAD) are cast to float32 and concatenated
inside the graph, so one device-to-host copy brings them all.

The capture follows PyTorch's recipe (CUDA semantics, "CUDA Graphs"): eager warm-up calls on a side stream (lazy
set-up, cuDNN's choices, TensorRT's deferred shape updates), then capture on the static inputs. Every graph allocates
from one memory pool (torch.cuda.graph_pool_handle), safe because replays never overlap (the lock) and no graph
reads another's outputs. Buffers, warm-up, capture and replays run under the caller's torch.inference_mode: a tensor
made in it can only be written in it. A capture that fails is one line with `strict` (cuda_graphs "on"); otherwise
a warning, and the backend's eager path runs from then on.

Unverified here: written against PyTorch's documented API on a machine without a GPU; tests/gpu/test_gpu_graphs.py
compares it with eager on a CUDA GPU.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emoedge.errors import EmoedgeError

log = logging.getLogger(__name__)

WARMUP_CALLS = 3  # eager calls on a side stream before a capture (PyTorch's recipe)
# a model step on static device inputs (image [F,3,H,W] float32, body [N,3,h,w] float32, frame [N] int64): its
# outputs, each [N, k], in the backend's output order
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]
Run = Callable[[Any, Any, np.ndarray], dict[str, np.ndarray]]


@dataclass
class _Bucket:
    """One captured shape: the graph, its static device inputs and their pinned host twins, the packed output on the
    device and its pinned host twin, and each output's width in the packed columns."""

    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    staged: tuple[torch.Tensor, ...]
    packed: torch.Tensor
    fetched: torch.Tensor
    widths: list[int]


class GraphBuckets:
    """CUDA graphs of `prepare(F, N)`'s step, one per (F, N) met, captured at its first call (or `warm`).

    `prepare` readies the backend for one shape (TensorRT: input shapes and fixed addresses) and returns the step to
    capture. `names` are the outputs' names, in the step's order. `eager` runs a call the backend's own way: it takes
    over, for good, when a capture fails and `strict` is False.
    """

    def __init__(
        self, device: str, prepare: Callable[[int, int], Step], names: Sequence[str], eager: Run, *, strict: bool
    ) -> None:
        self.device, self.prepare, self.names = torch.device(device), prepare, list(names)
        self.eager, self.strict = eager, strict
        self.pool = torch.cuda.graph_pool_handle()
        self.captured: dict[tuple[int, int], _Bucket] = {}
        self.failed: str | None = None  # why graphs stopped (a capture that failed, not strict)
        self.lock = threading.Lock()  # the static buffers are shared: one call at a time

    def run(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs of one call, by name: copied into the bucket's static inputs, replayed, copied out once."""
        with self.lock, torch.cuda.device(self.device):
            if self.failed is None:
                shape = (int(image.shape[0]), int(body.shape[0]))
                bucket = self.captured.get(shape) or self._capture_or_fail(shape, image, body)
                if bucket is not None:
                    return self._replay(bucket, (image, body, frame))
        return self.eager(image, body, frame)

    def _replay(self, bucket: _Bucket, values: tuple[Any, ...]) -> dict[str, np.ndarray]:
        for static, staged, value in zip(bucket.inputs, bucket.staged, values):
            if isinstance(value, torch.Tensor):
                static.copy_(value, non_blocking=True)
            else:  # numpy: into page-locked memory, then one asynchronous copy to the device
                np.copyto(staged.numpy(), np.asarray(value), casting="same_kind")
                static.copy_(staged, non_blocking=True)
        bucket.graph.replay()
        bucket.fetched.copy_(bucket.packed, non_blocking=True)
        torch.cuda.current_stream().synchronize()  # the pinned buffers are reused by the next call
        return unpack(bucket.fetched.numpy(), self.names, bucket.widths)

    def _capture_or_fail(self, shape: tuple[int, int], image: Any, body: Any) -> _Bucket | None:
        """The bucket of `shape`, captured now; a failed capture is one line (strict) or stops graphs (None)."""
        try:
            self.captured[shape] = self._capture(shape, tuple(image.shape[1:]), tuple(body.shape[1:]))
        except RuntimeError as exc:  # CUDA refused the capture (an op it cannot record); torch's CUDA errors are these
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if self.strict:
                raise EmoedgeError(
                    f"cuda_graphs 'on': capturing the model at {shape[0]} frame(s) x {shape[1]} person(s) failed "
                    f"({reason}); use --cuda-graphs auto or off"
                ) from None
            log.warning("CUDA graphs off from now on, the model runs eagerly: capturing %s failed (%s)", shape, reason)
            self.failed = reason
            return None
        return self.captured[shape]

    def _capture(self, shape: tuple[int, int], image: tuple[int, ...], body: tuple[int, ...]) -> _Bucket:
        frames, persons = shape
        sizes = ((frames, *image), (persons, *body), (persons,))
        types = (torch.float32, torch.float32, torch.int64)
        inputs = tuple(torch.zeros(size, dtype=kind, device=self.device) for size, kind in zip(sizes, types))
        staged = tuple(torch.zeros(size, dtype=kind, pin_memory=True) for size, kind in zip(sizes, types))
        step = self.prepare(frames, persons)
        with torch.cuda.device(self.device):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_CALLS):
                    step(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a detector running on its own thread (run's overlap) may use CUDA during a capture
            with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
                outputs = step(*inputs)
                packed = pack(outputs)
        fetched = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
        return _Bucket(graph, inputs, staged, packed, fetched, [int(out.shape[1]) for out in outputs])


def pack(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The outputs ([N, k] each) side by side as one float32 [N, sum k] tensor: one copy brings them all."""
    return torch.cat([out.float() for out in outputs], dim=1)


def unpack(packed: np.ndarray, names: Sequence[str], widths: Sequence[int]) -> dict[str, np.ndarray]:
    """`pack`'s columns back into one array per output name (copies: the packed buffer is reused by the next call)."""
    if packed.ndim != 2 or packed.shape[1] != sum(widths) or len(names) != len(widths):
        raise ValueError(f"packed outputs {list(packed.shape)} do not hold {dict(zip(names, widths))}")
    columns = np.cumsum([0, *widths])
    return {name: packed[:, start:stop].copy() for name, start, stop in zip(names, columns, columns[1:])}
