"""What a run did: per-stage latency (`Timer` → `StageStats`), per stream (`StreamStats`) and in total (`RunSummary`).

One summary shape whatever the number of streams: a single source is a run with one entry in `streams`. The record
it writes as the event log's last line is the `summary` of the event schema (`emoedge/schemas/events.schema.json`).
"""

from __future__ import annotations

import bisect
import collections
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("decode", "detect", "preprocess", "engine", "smooth", "render", "write", "explain")
# Upper bounds (s) of the latency histogram's buckets, as a Prometheus histogram reports them: 1 ms to 2.5 s.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RECENT = 10_000  # durations kept per stage for the percentiles: a run of days holds as much memory as one of minutes
FIRST = 10  # a stage's first durations, kept apart: a run that sets itself up inside its first frames shows there


@dataclass(frozen=True)
class StageStats:
    """Latency of one stage over the times it ran, in milliseconds (percentiles over its last `RECENT` times;
    `first_p90_ms` over its first `FIRST`, which a live camera meets at start)."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    first_p90_ms: float


@dataclass(frozen=True)
class StageHistogram:
    """One stage's durations as a histogram: per bucket of `BUCKETS_S`, how many took at most its bound
    (cumulative, the last bucket +Inf), their sum in seconds and their count."""

    buckets: tuple[int, ...]
    sum_s: float
    count: int


class _Stage:
    """One stage's durations: count, sum and histogram over the whole run, the last `RECENT` for percentiles."""

    def __init__(self) -> None:
        self.count, self.total = 0, 0.0
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.recent: collections.deque[float] = collections.deque(maxlen=RECENT)
        self.first: list[float] = []

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.recent.append(seconds)
        if len(self.first) < FIRST:
            self.first.append(seconds)

    def stats(self) -> StageStats:
        p50, p90 = np.percentile(np.asarray(self.recent) * 1000.0, (50, 90))
        first_p90 = np.percentile(np.asarray(self.first) * 1000.0, 90)
        return StageStats(self.count, self.total * 1000.0 / self.count, float(p50), float(p90), float(first_p90))

    def histogram(self) -> StageHistogram:
        return StageHistogram(tuple(itertools.accumulate(self.counts)), self.total, self.count)


class Timer:
    """Wall-clock durations per stage, safe from several threads (the finding thread records decode and detect);
    bounded memory, however long the run."""

    def __init__(self) -> None:
        self._stages = {name: _Stage() for name in STAGES}
        self._lock = threading.Lock()

    def record(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._stages[stage].add(seconds)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, time.perf_counter() - start)

    def stats(self) -> dict[str, StageStats]:
        """Each stage that ran: count, mean and recent percentiles."""
        with self._lock:
            return {name: stage.stats() for name, stage in self._stages.items() if stage.count}

    def histograms(self) -> dict[str, StageHistogram]:
        """Each stage that ran, as a histogram over `BUCKETS_S` (what /metrics reports)."""
        with self._lock:
            return {name: stage.histogram() for name, stage in self._stages.items() if stage.count}


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
    outcome: str = "completed"  # "completed", "interrupted" or "failed: <one line>"
    untagged_frames: int = 0  # frames written without emotions: the served model was unavailable
    model_outages: int = 0  # times the served model stopped answering
    model_outage_s: float = 0.0  # their seconds in total
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
            + ("" if self.outcome == "completed" else f" ({self.outcome})"),
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
        if self.model_outages:
            lines.append(
                f"model: {self.model_outages} outage(s), {self.model_outage_s:.1f} s in total; {self.untagged_frames} "
                "frames written untagged meanwhile"
            )
        if self.published or self.dropped or self.undelivered:
            lines.append(
                f"MQTT: {self.published} events delivered, {self.dropped} dropped (queue full), "
                f"{self.undelivered} undelivered at exit"
            )
        if self.log is not None:
            lines.append(f"written: events {self.log}")
        return "\n".join(lines)
