"""`/metrics`: a run's state in Prometheus' text format, read from the engine when Prometheus scrapes.

Why a collector that reads at scrape time, not metric objects the loop updates: the loop pays nothing per frame for
a scraper that may never come, and what is reported (a stream's state, seconds since its last frame) is the state at
the moment of the scrape. Counters come from the run's own counts; stage latencies from `Timer.histograms`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from emoedge.runtime.summary import BUCKETS_S

if TYPE_CHECKING:
    from emoedge.runtime.engine import Engine

# A stream's states; "failed: <reason>" is reported as "failed" (a reason per label value would make a new series
# for every distinct error).
STATES = ("connecting", "live", "reconnecting", "reading", "ended", "stopped", "lost", "removed", "failed")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class EngineCollector:
    """A prometheus_client collector over one engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        views = engine.views()
        per_stream = {
            "frames": CounterMetricFamily("emoedge_stream_frames", "Frames tagged and written", labels=["stream"]),
            "fps": GaugeMetricFamily("emoedge_stream_fps", "Frames per second over the last 30 frames", labels=["stream"]),
            "persons": GaugeMetricFamily("emoedge_stream_persons", "Persons in the newest frame", labels=["stream"]),
            "reconnects": CounterMetricFamily("emoedge_stream_reconnects", "Outages of a live source", labels=["stream"]),
            "since": GaugeMetricFamily(
                "emoedge_stream_seconds_since_frame", "Seconds since the last frame (since it joined: none yet)",
                labels=["stream"],
            ),
        }  # fmt: skip
        state = StateSetMetricFamily("emoedge_stream_state", "What the stream is doing", labels=["stream"])
        for view in views:
            labels = [view.id]
            per_stream["frames"].add_metric(labels, view.frames)
            per_stream["fps"].add_metric(labels, view.fps)
            per_stream["persons"].add_metric(labels, view.persons)
            per_stream["reconnects"].add_metric(labels, view.reconnects)
            per_stream["since"].add_metric(labels, view.since_frame_s)
            now = view.state.partition(":")[0]
            state.add_metric(labels, {name: name == now for name in STATES})
        yield from per_stream.values()
        yield state
        stages = HistogramMetricFamily(
            "emoedge_stage_seconds", "Latency of each stage of the frame loop", labels=["stage"]
        )
        for name, histogram in engine.timer.histograms().items():
            bounds = [*(f"{b:g}" for b in BUCKETS_S), "+Inf"]
            stages.add_metric([name], list(zip(bounds, histogram.buckets)), histogram.sum_s)
        yield stages
        loop = engine.loop
        yield _counter(
            "emoedge_ticks", "Ticks tagged (each takes the new frame of every stream that has one)", loop.ticks
        )
        yield _counter(
            "emoedge_engine_calls", "Calls of the emotion model (at most one per tick)", loop.tagger.engine_calls
        )
        yield _counter("emoedge_inferences", "Persons run through the emotion model", loop.tagger.inferences)
        yield GaugeMetricFamily(
            "emoedge_ready", "1 once the model is loaded and a first frame tagged", value=engine.ready
        )
        yield GaugeMetricFamily(
            "emoedge_model_available", "0 during an outage of a served model (frames go untagged)",
            value=loop.tagger.outage_s is None,
        )  # fmt: skip
        yield _counter("emoedge_untagged_frames", "Frames written without emotions: the model was unavailable",
                       loop.tagger.untagged)  # fmt: skip
        publisher = engine.publisher
        if publisher is not None:
            yield _counter("emoedge_mqtt_published", "Events the MQTT broker acknowledged", publisher.published)
            yield _counter("emoedge_mqtt_dropped", "Events dropped: the publish queue was full", publisher.dropped)
            yield _counter(
                "emoedge_mqtt_undelivered", "Events unacknowledged when the publisher closed", publisher.undelivered
            )
            yield GaugeMetricFamily("emoedge_mqtt_queue", "Events not acknowledged yet", value=publisher.waiting)
        yield InfoMetricFamily(
            "emoedge_model", "The emotion model and the person finders", value={"backend": engine.backend.reason,
                                                                                "persons": engine.persons},
        )  # fmt: skip


def exposition(engine: Engine) -> bytes:
    """The engine's metrics as Prometheus' text format (`CONTENT_TYPE`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine))  # type: ignore[arg-type]
    return generate_latest(registry)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
