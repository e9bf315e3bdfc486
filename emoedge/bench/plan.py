"""What `emoedge bench` measures, apart from the measuring code so that the command line's defaults do not import
torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emoedge.devices import DEVICE_HELP, PRECISION_HELP, parse_device
from emoedge.errors import EmoedgeError
from emoedge.settings import option, validate


@dataclass(frozen=True)
class BenchPlan:
    """What to measure: persons per engine call, streams, the clip (None: generated), its boxes, the detector, the
    device and precision, and whether a checkpoint is also measured compiled (eager and, on CUDA, CUDA graphs always
    are)."""

    persons: tuple[int, ...] = option((1, 4, 16), "persons per engine call", low=1)
    streams: int = option(1, "also measure this many streams in one process", low=1, high=64)
    source: Path | None = option(None, "your clip for the end-to-end rows (default: a generated 640x480 one)")
    boxes: Path | None = option(None, "person boxes of --source (JSON or CSV)")
    detector: str | None = option(None, "YOLO weights for the end-to-end rows (every frame and every 3rd frame)")
    seconds: float = option(2.0, "timed seconds per engine point, about", low=0, low_open=True, high=600)
    frames: int = option(40, "frames per end-to-end point", low=1, high=100_000)
    device: str = option("auto", DEVICE_HELP)
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = option("auto", PRECISION_HELP)
    compile: bool = option(
        False, "also measure the checkpoint compiled by torch.compile ('compiled' rows; tens of seconds of compiling)"
    )

    def __post_init__(self) -> None:
        validate(self)
        if not self.persons:
            raise EmoedgeError("persons (): expected at least one count of persons per engine call")
        parse_device(self.device)
        if self.source is not None and self.boxes is None and self.detector is None:
            raise EmoedgeError(f"--source {self.source}: give its --boxes or a --detector to find its persons")
