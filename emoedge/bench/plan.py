"""What `emoedge bench` measures, apart from the measuring code so that the command line's defaults do not import
torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emoedge.errors import EmoedgeError


@dataclass(frozen=True)
class BenchPlan:
    """What to measure: persons per engine call, streams, the clip (None: generated), its boxes, the detector."""

    persons: tuple[int, ...] = (1, 4, 16)
    streams: int = 1
    source: Path | None = None
    boxes: Path | None = None
    detector: str | None = None
    seconds: float = 2.0  # timed seconds per engine point, about
    frames: int = 40  # end-to-end frames per point
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.persons or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.persons):
            raise EmoedgeError(f"--persons {list(self.persons)}: expected whole numbers >= 1")
        if isinstance(self.streams, bool) or not isinstance(self.streams, int) or not 1 <= self.streams <= 64:
            raise EmoedgeError(f"--streams {self.streams!r}: expected a whole number from 1 to 64")
        if self.source is not None and self.boxes is None and self.detector is None:
            raise EmoedgeError(f"--source {self.source}: give its --boxes or a --detector to find its persons")
        if not 0 < self.seconds <= 600 or not 1 <= self.frames <= 100_000:
            raise EmoedgeError(f"--seconds {self.seconds} / --frames {self.frames}: expected 0-600 s and 1+ frames")
