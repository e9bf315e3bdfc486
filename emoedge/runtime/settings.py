"""How a run treats its frames, apart from the runtime code so that reading the settings (the CLI's options, its
key=value overrides) does not import torch or OpenCV.

Each field declares its help text and range (`emoedge.settings.option`): `emoedge run`'s options are generated from
these declarations, so a new field is a new option, checked, with no other edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from emoedge import settings
from emoedge.devices import COMPILE_HELP, CUDA_GRAPHS_HELP, DEVICE_HELP, PRECISION_HELP, parse_device
from emoedge.settings import QUIET_HELP, option

CONNECT_TIMEOUT = 30.0  # s: an IP camera powered with the box streams some 20-30 s after power-on
SMOOTH = 0.5  # EMA weight of a track's past: halves the jitter of per-frame scores, follows a change in ~3 inferences
MODEL_TIMEOUT = 60.0  # s: a Triton server restarting (a rolling update) is back well within a minute
PUBLISH_QUEUE = 10_000  # records held across a broker outage: about 5 min of 4 streams x 2 persons at 4 FPS
MAX_QUEUE = 65_535  # MQTT message ids are 16-bit: more unacknowledged messages than ids cannot be told apart


@dataclass(frozen=True)
class RunSettings:
    """How a run treats its frames (where they come from and go is said apart): `emoedge run` options and
    key=value keys, the same for one stream or several."""

    every: int = option(1, "re-infer each track every K frames (reuse its result between)", low=1)
    smooth: float = option(SMOOTH, "EMA weight of a track's past scores (0: off)", low=0, high=1, high_open=True)
    device: str = option("auto", DEVICE_HELP)
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = option("auto", PRECISION_HELP)
    cuda_graphs: Literal["auto", "on", "off"] = option("auto", CUDA_GRAPHS_HELP)
    compile: bool = option(False, COMPILE_HELP)
    max_frames: int | None = option(None, "stop each stream after this many frames (default: all)", low=1)
    show: bool = option(False, "open a live window per stream (needs OpenCV with GUI support and a display)")
    progress: bool = option(True, QUIET_HELP, flag="--quiet")
    download: bool = option(True, "never download detector weights (offline use)", flag="--no-download")
    connect_timeout_s: float = option(
        CONNECT_TIMEOUT,
        "seconds to wait for a live source (camera, stream) that is not up yet at start, retrying like an outage: an "
        "IP camera powered with the box streams some 20-30 s after power-on (0: fail at once)",
        low=0,
    )
    explain_every: int = option(
        0,
        "every K-th frame of each stream, one Figure-1 explanation image per person into --explain-dir/<stream>/ "
        "(checkpoints only; about a second per person on a CPU; 0: off)",
        low=0,
    )
    detect_every: int = option(
        1, "run the detector every K-th frame; ByteTrack's Kalman filter carries the tracks between", low=1
    )
    detect_size: int | None = option(
        None, "detector inference size in pixels, e.g. 320 (default: the model's own, 640 for Ultralytics')",
        low=32, high=4096,
    )  # fmt: skip
    overlap: Literal["auto", "on", "off"] = option(
        "auto", "find persons one tick ahead on a thread of their own (auto: when the model runs on a CUDA device)"
    )
    model_timeout_s: float = option(
        MODEL_TIMEOUT,
        "seconds a served model (grpc://, http://) may stay unreachable before the run fails; meanwhile frames go "
        "on untagged and it is asked again every half second",
        low=0,
    )
    publish_queue: int = option(
        PUBLISH_QUEUE, "events held while the MQTT broker is unreachable; past it they are dropped and counted",
        low=1, high=MAX_QUEUE,
    )  # fmt: skip

    def __post_init__(self) -> None:
        settings.validate(self)
        parse_device(self.device)
