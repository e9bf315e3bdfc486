"""The one interface every inference backend offers, and the input checks they share.

Why checks here: a wrong crop size or a batch of frames reaches TensorRT or ONNX Runtime as an opaque failure deep
inside the engine; checked up front against the model card, it is one line naming the input and both shapes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from emoedge.card import ModelCard
from emoedge.categories import BRANCHES, NUM_CATEGORIES
from emoedge.errors import EmoedgeError


class Backend(ABC):
    """A loaded model: `infer(image [F,3,H,W], body [N,3,h,w], frame [N])` → {"scores", "modality_weights"[, "vad"]}.

    Inputs are preprocessed float arrays or torch tensors (the card says the sizes and normalisation); `frame` holds
    each person's frame index (None: one frame). `reason` tells users why this backend, device and precision were
    chosen. `max_frames` is how many frames one model call takes (None: any; 1 for ONNX files and engines made
    before the `frame` input): more frames are run in groups of it, each person with its own frame.
    `min_persons`..`max_persons` bound N in one model call (an engine's optimisation profile; a DLA engine fixes N):
    more persons are run in slices of `max_persons`, fewer than `min_persons` are padded with blank crops whose
    outputs are dropped; fewer frames than `min_frames` are padded with blank ones — here, once, for every backend.
    `bucketed` backends (static-shape devices, CUDA graphs: one compiled or captured program per shape) also get every
    call's F and N padded up to its bucket (`bucket`), so a run meets a handful of shapes, which `warm` runs before
    the first frame.
    """

    name: str
    card: ModelCard
    device: str
    precision: str
    reason: str
    max_frames: int | None = None
    min_persons: int = 1
    min_frames: int = 1
    max_persons: int | None = None
    bucketed: bool = False

    @property
    def input_device(self) -> str:
        """Where inputs should live to avoid a copy: the model's device (ONNX Runtime overrides: host arrays)."""
        return self.device

    def infer(self, image: Any, body: Any, frame: Any = None) -> dict[str, np.ndarray]:
        """Scores [N,26], modality weights [N,3] (body, place, scene gist) and, if the model has it, VAD [N,3]."""
        frames, frame = self.check_inputs(image, body, frame)
        if len(frame) == 0:
            return self.empty_outputs()
        if self.max_frames is not None and frames > self.max_frames:
            return self._in_groups(image, body, frame, self.max_frames)
        return self._in_slices(image, body, frame)

    @abstractmethod
    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on inputs already checked against the card (N >= 1, F <= max_frames); float32 outputs."""

    def check_inputs(self, image: Any, body: Any, frame: Any = None) -> tuple[int, np.ndarray]:
        """(F, frame as int64 [N]); a wrong input is an EmoedgeError naming it, its shape or values and what was
        expected."""
        frames = _check_shape("image", image, (None, 3, *self.card.image_size), "F")
        persons = _check_shape("body", body, (None, 3, *self.card.body_size))
        if frames < 1:
            raise EmoedgeError("input 'image': no frame received, expected [F, 3, H, W] with F >= 1")
        if frame is None:
            if frames != 1:
                raise EmoedgeError(f"input 'frame': missing; with {frames} frames each person's frame index is needed")
            return frames, np.zeros(persons, np.int64)
        values = frame.cpu().numpy() if hasattr(frame, "cpu") else np.asarray(frame)
        if values.shape != (persons,) or not np.issubdtype(values.dtype, np.integer):
            raise EmoedgeError(f"input 'frame': {values.dtype} {list(values.shape)} received, expected int [{persons}]")
        if persons and not 0 <= values.min() <= values.max() < frames:
            raise EmoedgeError(f"input 'frame': indices {values.min()}..{values.max()}, expected 0..{frames - 1}")
        return frames, values.astype(np.int64, copy=False)

    def _in_groups(self, image: Any, body: Any, frame: np.ndarray, size: int) -> dict[str, np.ndarray]:
        """Frames `size` at a time, each call with the persons of its frames; outputs in the persons' order."""
        outputs = {name: np.zeros((len(frame), *value.shape[1:]), np.float32) for name, value in
                   self.empty_outputs().items()}  # fmt: skip
        for start in range(0, int(image.shape[0]), size):
            index = np.flatnonzero((frame >= start) & (frame < start + size))
            if index.size:
                part = self._in_slices(image[start : start + size], body[index], frame[index] - start)
                for name, value in part.items():
                    outputs[name][index] = value
        return outputs

    def _in_slices(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Persons in calls of `min_persons`..`max_persons` (padded with blank crops of frame 0, their rows dropped);
        F padded up to `min_frames` (a DLA engine fixes F) with blank frames no person points at; for a bucketed
        backend F and each call's N padded up to their buckets."""
        persons, frames = len(frame), int(image.shape[0])
        image = _padded(image, max(bucket(frames, self.max_frames) if self.bucketed else frames, self.min_frames))
        calls = person_batches(persons, self.min_persons, self.max_persons or persons)
        if self.bucketed:
            calls = [(start, stop, bucket(size, self.max_persons)) for start, stop, size in calls]
        if calls == [(0, persons, persons)]:
            return self._infer(image, body, frame)
        parts = []
        for start, stop, size in calls:
            count = stop - start
            part = self._infer(image, _padded(body[start:stop], size), _padded(frame[start:stop], size))
            parts.append({name: value[:count] for name, value in part.items()})
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def warm_shapes(self, frames: int, persons: int) -> list[tuple[int, int]]:
        """(F, N) of every model call a run of up to `frames` frames and `persons` persons per tick can make: for a
        bucketed backend every bucket up to those (capped by the backend's bounds), else one call of the most frames
        and the fewest persons (one call sets a dynamic-shape runtime up; more crops would only cost time)."""
        top_frames = min(frames, self.max_frames or frames)
        top_persons = max(min(persons, self.max_persons or persons), self.min_persons)
        if not self.bucketed:
            return [(top_frames, self.min_persons)]
        frame_sizes = sorted({bucket(f, self.max_frames) for f in range(1, top_frames + 1)})
        person_sizes = sorted({bucket(max(n, self.min_persons), self.max_persons) for n in range(1, top_persons + 1)})
        return [(f, n) for f in frame_sizes for n in person_sizes]

    def warm(self, frames: int, persons: int) -> tuple[int, float]:
        """Run blank inputs of every shape of `warm_shapes`, so that no frame pays for a shape's set-up (a compiled
        bucket, a captured CUDA graph, cuDNN's first call); (calls made, seconds taken)."""
        started = time.perf_counter()
        shapes = self.warm_shapes(frames, persons)
        for f, n in shapes:
            image = np.zeros((f, 3, *self.card.image_size), np.float32)
            body = np.zeros((n, 3, *self.card.body_size), np.float32)
            self.infer(image, body, np.arange(n, dtype=np.int64) % f)
        return len(shapes), time.perf_counter() - started

    def empty_outputs(self) -> dict[str, np.ndarray]:
        """Outputs for a frame without persons, without running the model."""
        out = {
            "scores": np.zeros((0, NUM_CATEGORIES), np.float32),
            "modality_weights": np.zeros((0, len(BRANCHES)), np.float32),
        }
        if self.card.vad:
            out["vad"] = np.zeros((0, 3), np.float32)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r}; {self.reason})"


def person_batches(persons: int, low: int, high: int) -> list[tuple[int, int, int]]:
    """(start, stop, size) per model call: slices of at most `high` persons, each run padded to at least `low`."""
    if not 1 <= low <= high:
        raise EmoedgeError(f"model profile: persons min {low}, max {high}; expected 1 <= min <= max")
    return [(start, min(start + high, persons), max(low, min(high, persons - start)))
            for start in range(0, persons, high)]  # fmt: skip


def bucket(count: int, top: int | None = None) -> int:
    """The shape a bucketed backend runs `count` (F or N) at: the next power of two (1, 2, 4, 8, ...), or `top`
    where that is smaller (a profile's maximum need not be a power of two)."""
    size = 1 << max(0, int(count) - 1).bit_length()
    return size if top is None else min(size, top)


def _padded(value: Any, size: int) -> Any:
    """`value` (numpy array or torch tensor, persons first) with zero rows appended up to `size` rows."""
    missing = size - int(value.shape[0])
    if missing <= 0:
        return value
    if hasattr(value, "new_zeros"):  # a torch tensor, on whatever device it lives
        import torch

        return torch.cat([value, value.new_zeros((missing, *value.shape[1:]))])
    return np.concatenate([value, np.zeros((missing, *value.shape[1:]), value.dtype)])


def _check_shape(name: str, value: Any, expected: tuple[int | None, ...], free: str = "N") -> int:
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        want = ", ".join(free if e is None else str(e) for e in expected)
        raise EmoedgeError(f"input {name!r}: shape {list(shape)} received, expected [{want}] (from the model card)")
    return int(shape[0])


def host_array(value: Any, dtype: type) -> np.ndarray:
    """A contiguous numpy array of `dtype` from a numpy array or a (CPU or CUDA) torch tensor: what host-side
    runtimes (ONNX Runtime, a Triton request) take."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=dtype)
