"""Who is in the frames: person finders, which return boxes for a batch of frames (a tick's frames of the streams
due for detection), untracked — tracking is per stream (`emoedge.runtime.tracking`).

Two finders ship: a YOLO model (`YoloFinder`, one batched prediction for every stream that uses it) and a boxes file
(`emoedge.runtime.boxes.BoxesFile`, one per stream). `PersonFinder` is the public seam for others: a benchmark
that runs a detector for its cost but hands the tracker known boxes, a finder of another library.

Ultralytics is imported on emoedge's terms (offline, no run-time installs: `emoedge.runtime.yolo`) and weights are
found or fetched by `emoedge.runtime.weights`. Ultralytics' predictor is set up once, when the finder is built,
because setting it up changes torch's thread count (see `YoloFinder`), and warmed by the run at its streams' frame
sizes before their first frame (`YoloFinder.warm`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.runtime.sources import Frame
from emoedge.runtime.weights import detector_weights
from emoedge.runtime.yolo import import_ultralytics

PERSON = 0  # COCO class index
TRACK_CONF = 0.1  # the detection confidence floor Ultralytics' `model.track` sets for ByteTrack


@dataclass(frozen=True, eq=False)
class Found:
    """The persons a finder found in one frame: `boxes` [n,4] x1,y1,x2,y2 pixels, `confidences` [n], and `ids` [n]
    when the finder knows the tracks (a boxes file with ids; None: the stream's tracker numbers them)."""

    boxes: np.ndarray
    confidences: np.ndarray
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if (
            self.boxes.shape != (n, 4)
            or self.confidences.shape != (n,)
            or (self.ids is not None and len(self.ids) != n)
        ):
            raise ValueError(
                f"Found: boxes {self.boxes.shape}, confidences {self.confidences.shape}: expected [n,4], [n]"
            )


class PersonFinder(Protocol):
    """Finds persons in a batch of frames (of one stream or several), in one call where it can.

    A finder may also offer `warm(sizes) -> seconds` (YoloFinder does): the run calls it before the first frame with
    the (width, height) of each stream it serves whose size is known, so that the first frame pays no set-up.
    """

    name: str  # for the start-up line and the summary
    gives_ids: bool  # whether `Found.ids` is set (then no tracker runs for the streams it serves)

    def find(self, frames: list[Frame]) -> list[Found]:
        """One `Found` per frame, in order."""
        ...

    def unused(self) -> list[str]:
        """Given persons no frame has asked for so far (a boxes file's entries), described for a warning."""
        ...


class YoloFinder:
    """Persons by an Ultralytics YOLO model: ONE batched prediction for the frames of every stream due for detection.

    Ultralytics sets up its predictor on the first predict call, and that setup (`select_device` in
    utils/torch_utils.py) sets torch to (cores - 1) threads for CPU inference: 1 on a 2-core machine, halving the
    emotion model's speed. That setting is for Ultralytics' own training loop; the runtime keeps the process's. So
    the predictor is set up here, once (for an exported model reading its class names sets one up too), and the
    thread count restored; Ultralytics rebuilds it only when a setup argument (device, ...) changes, and every call
    passes the same ones. The confidence floor is the one `model.track` uses (0.1: ByteTrack's second stage matches
    low-confidence boxes), so tracks come out as `track`'s would.
    """

    gives_ids = False

    def __init__(
        self, weights: Path | str | None = None, *, device: str = "auto", download: bool = True, size: int | None = None
    ) -> None:
        """`weights`: a path, an official Ultralytics name or a URL (see `detector_weights`); None: yolo11n.pt;
        `size`: inference size in pixels (None: the model's own, 640 for Ultralytics' detectors)."""
        weights = detector_weights(weights, download=download)
        ultralytics = import_ultralytics()
        if weights.suffix.lower() == ".engine":
            # TensorRT keeps one logger per process, the first one given: make it emoedge's before Ultralytics
            # loads its engine, so that errors of the emotion engine still carry TensorRT's reason.
            from emoedge.formats.tensorrt import claim_logging, import_tensorrt

            claim_logging(import_tensorrt())
        try:
            with _torch_threads_kept():  # reading `names` of an exported model sets up a predictor too
                self.model = ultralytics.YOLO(str(weights), task="detect")
                names = self.model.names
        except Exception as exc:  # Ultralytics raises many types for unreadable or foreign files
            raise EmoedgeError(f"detector {weights}: Ultralytics cannot load it ({_first_line(exc)})") from None
        first = str(names.get(PERSON, "")) if isinstance(names, dict) else ""
        if first and not first.isdigit() and first != "person":
            raise EmoedgeError(
                f"detector {weights}: class {PERSON} is {first!r}, expected 'person' (a COCO-trained YOLO model)"
            )
        self._args: dict[str, Any] = {
            "classes": [PERSON], "conf": TRACK_CONF, "verbose": False, "device": parse_device(device).ultralytics
        }  # fmt: skip
        if size is not None:
            self._args["imgsz"] = size
        self._set_up_predictor(weights)
        self.name = f"YOLO {weights.name}" + (f" at {size} px" if size is not None else "")

    def _set_up_predictor(self, weights: Path) -> None:
        """Build Ultralytics' predictor with one prediction on a blank frame, keeping torch's thread count.

        A device or backend Ultralytics cannot use fails here, as one line, not on the first frame.
        """
        try:
            with _torch_threads_kept():
                self.model.predict(np.zeros((32, 32, 3), np.uint8), **self._args)
        except Exception as exc:  # as for loading: many types, for unusable devices and missing backends
            raise EmoedgeError(f"detector {weights}: Ultralytics cannot run it ({_first_line(exc)})") from None

    def warm(self, sizes: Sequence[tuple[int, int]]) -> float:
        """One prediction on blank frames of the streams' sizes (width, height), batched as a tick batches them:
        the set-up predictor ran on a 32×32 image, letterboxed to another network shape than a stream's frames
        (and on CUDA, cuDNN chooses its kernels per shape). Seconds taken."""
        started = time.perf_counter()
        self.model.predict([np.zeros((height, width, 3), np.uint8) for width, height in sizes], **self._args)
        return time.perf_counter() - started

    def find(self, frames: list[Frame]) -> list[Found]:
        results = self.model.predict([frame.image for frame in frames], **self._args)
        return [Found(r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy()) for r in results]

    def unused(self) -> list[str]:
        return []  # a detector finds persons, it is given none


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Ultralytics' predictor set-up (`select_device`) sets torch to one thread per core less; put the count back."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _first_line(exc: Exception) -> str:
    """The gist of an Ultralytics error, whose messages run over several lines."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
