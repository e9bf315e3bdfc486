"""How a run treats its frames, apart from the runtime code so that reading the settings (the CLI's defaults, its
key=value overrides) does not import torch or OpenCV."""

from __future__ import annotations

from dataclasses import dataclass

from emoedge.errors import EmoedgeError

CONNECT_TIMEOUT = 30.0  # s: an IP camera powered with the box streams some 20-30 s after power-on
OVERLAP = ("auto", "on", "off")
SMOOTH = 0.5  # EMA weight of a track's past: halves the jitter of per-frame scores, follows a change in ~3 inferences


@dataclass(frozen=True)
class RunSettings:
    """How a run treats its frames (where they come from and go is said apart): `emoedge run key=value` keys.

    `every` k re-infers each track every k-th frame; `smooth` is the EMA weight of a track's past scores (0: off);
    `device` is the model's ("auto", "cpu", "cuda[:K]", "tensorrt[:K]"); `max_frames` stops after that many frames;
    `show` opens a live window; `progress` prints a progress bar and the summary; `download` lets a missing official
    Ultralytics detector (yolo11n.pt, ...) be fetched by Ultralytics' downloader (off: never download);
    `connect_timeout` is how long a live source not up at start is waited for (seconds; 0: fail at once);
    `explain_every` k writes a Figure-1 explanation of every person of every k-th frame (0: off; checkpoints only);
    `detect_every` k runs the detector on every k-th frame, the tracker carrying the tracks between (as DeepStream's
    `interval`); `detect_size` is the detector's inference size in pixels (None: the model's own); `overlap` runs
    the detector one frame ahead on its own thread ("auto": for models on a CUDA device, where the two do not
    share the CPU's cores; "on", "off").
    """

    every: int = 1
    smooth: float = SMOOTH
    device: str = "auto"
    max_frames: int | None = None
    show: bool = False
    progress: bool = True
    download: bool = True
    connect_timeout: float = CONNECT_TIMEOUT
    explain_every: int = 0
    detect_every: int = 1
    detect_size: int | None = None
    overlap: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise EmoedgeError(f"every {self.every!r}: expected an integer >= 1 (re-infer each track every k-th frame)")
        if isinstance(self.smooth, bool) or not isinstance(self.smooth, (int, float)) or not 0.0 <= self.smooth < 1.0:
            raise EmoedgeError(f"smooth {self.smooth!r}: expected a number in [0, 1) (0 turns smoothing off)")
        wait = self.connect_timeout
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < float("inf"):
            raise EmoedgeError(f"connect_timeout {wait!r}: expected seconds >= 0 (0: fail at once)")
        k = self.explain_every
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise EmoedgeError(f"explain_every {k!r}: expected an integer >= 0 (explain every k-th frame; 0: off)")
        check_detect_every(self.detect_every)
        check_detect_size(self.detect_size)
        if self.overlap not in OVERLAP:
            raise EmoedgeError(f"overlap {self.overlap!r}: expected one of {', '.join(OVERLAP)}")
        frames = self.max_frames
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
            raise EmoedgeError(f"max_frames {frames!r}: expected an integer >= 1")


def check_detect_every(every: object) -> None:
    """One line unless `every` is an integer >= 1 (checked here for the CLI and again where detectors are built)."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise EmoedgeError(f"detect_every {every!r}: expected an integer >= 1 (run the detector every k-th frame)")


def check_detect_size(size: object) -> None:
    """One line unless `size` is None or pixels from 32 to 4096."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 4096):
        raise EmoedgeError(f"detect_size {size!r}: expected pixels from 32 to 4096 (None: the model's own)")
