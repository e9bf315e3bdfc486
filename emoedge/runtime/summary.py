"""What a run did: per-stage latency (`Timer` → `StageStats`), per stream (`StreamStats`) and in total (`RunSummary`).

One summary shape whatever the number of streams: a single source is a run with one entry in `streams`. The record
it writes as the event log's last line is the `summary` of the event schema (`emoedge/schemas/events.schema.json`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("decode", "detect", "preprocess", "engine", "smooth", "render", "write", "explain")


@dataclass(frozen=True)
class StageStats:
    """Latency of one stage over the times it ran, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> StageStats:
        if not seconds:
            return cls(0, 0.0, 0.0, 0.0)
        ms = np.asarray(seconds) * 1000.0
        return cls(len(ms), float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 90)))


class Timer:
    """Wall-clock durations per stage; `record` is safe from a second thread (appending to a list is atomic)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {name: [] for name in STAGES}

    def record(self, stage: str, seconds: float) -> None:
        self.seconds[stage].append(seconds)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage].append(time.perf_counter() - start)

    def stats(self) -> dict[str, StageStats]:
        return {name: StageStats.of(values) for name, values in self.seconds.items() if values}


@dataclass(frozen=True)
class StreamStats:
    """One stream: its frames, person events and rate, how it ended and its outputs."""

    id: str
    source: str  # printable, credentials redacted
    frames: int
    events: int
    fps: float
    outcome: str  # "ended", "stopped" (a stop request, max_frames), "lost" or "failed: <reason>"
    video: str | None = None
    explanations: int = 0  # Figure-1 images written (--explain-every)


@dataclass(frozen=True)
class RunSummary:
    """What a run did, per stream and in total, with the engine calls per tick and MQTT delivery."""

    streams: list[StreamStats]
    frames: int
    events: int  # person records (one per person per processed frame)
    inferences: int  # persons run through the engine (fewer than events with every > 1)
    ticks: int  # loop turns: each takes the new frame of every stream that has one
    engine_calls: int  # at most one per tick
    seconds: float
    fps: float  # frames of all streams per second
    stages: dict[str, StageStats]
    backend: str
    detector: str
    interrupted: bool  # a stop was requested (Ctrl-C, SIGTERM, a closed window): frames may be missing at the end
    published: int = 0  # events the MQTT broker acknowledged
    dropped: int = 0  # events refused because the publish queue was full
    undelivered: int = 0  # events still unacknowledged when the run ended
    log: Path | None = None
    explanations: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON-able form written as the log's last line (type "summary")."""
        data = asdict(self)
        data["stages"] = {name: asdict(s) for name, s in self.stages.items()}
        data["log"] = None if self.log is None else str(self.log)
        return {"type": "summary", **data}

    def describe(self) -> str:
        """Human-readable lines: totals, one line per stage, one per stream, MQTT delivery, outputs."""
        several = len(self.streams) > 1
        streams, total = (f"{len(self.streams)} streams: ", " in total") if several else ("", "")
        lines = [
            f"{streams}{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS{total}; {self.events} person "
            "events, "
            f"{self.inferences} inferred in {self.engine_calls} engine calls over {self.ticks} ticks"
            + (" (interrupted)" if self.interrupted else ""),
            f"{'stage':<11}{'mean ms':>9}{'p50':>9}{'p90':>9}{'count':>8}",
        ]
        for name, s in self.stages.items():
            lines.append(f"{name:<11}{s.mean_ms:>9.2f}{s.p50_ms:>9.2f}{s.p90_ms:>9.2f}{s.count:>8}")
        for s in self.streams:
            outputs = [
                f"video {s.video}" if s.video else "",
                f"{s.explanations} explanations" if s.explanations else "",
            ]
            written = "".join(f", {o}" for o in outputs if o)
            lines.append(f"  {s.id}: {s.frames} frames, {s.fps:.1f} FPS, {s.events} events, {s.outcome}{written}")
        if self.published or self.dropped or self.undelivered:
            lines.append(
                f"MQTT: {self.published} events delivered, {self.dropped} dropped (queue full), "
                f"{self.undelivered} undelivered at exit"
            )
        if self.log is not None:
            lines.append(f"written: events {self.log}")
        return "\n".join(lines)
