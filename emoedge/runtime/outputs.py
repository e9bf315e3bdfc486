"""Where a run's results go, in two kinds: per stream (its annotated video, its live window, its explanations) and
per run (the one event log, the MQTT publisher). The engine hands each tagged frame to its stream's outputs and to
the run's; neither knows how many streams there are.

Why each is closed in `finally` by the engine's exit stack: an interrupted or failed run must still leave playable
videos (the MP4 index is written on release) and an event log of whole lines ending with the summary.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emoedge.card import ModelCard
from emoedge.runtime.live import LiveFrame
from emoedge.runtime.persons import Persons
from emoedge.runtime.publish import MqttPublisher
from emoedge.runtime.render import draw
from emoedge.runtime.sinks import EventLog, VideoSink, Window, person_record
from emoedge.runtime.sources import Frame
from emoedge.runtime.summary import RunSummary, Timer

if TYPE_CHECKING:
    from emoedge.explain.every import FrameExplainer

DEFAULT_FPS = 25.0  # for the output video when the source does not say (image folders)


class StreamOutputs:
    """One stream's outputs: the annotated video (opened at its first frame, sized by it, at the source's rate),
    a live window titled with the stream's id, the newest annotated frame while someone watches it (`live`), and
    every K-th frame's explanations into DIR/<stream>/."""

    def __init__(
        self,
        stream: str,
        card: ModelCard,
        timer: Timer,
        *,
        video: Path | None = None,
        show: bool = False,
        explainer: FrameExplainer | None = None,
    ) -> None:
        self.stream, self.card, self.timer, self.path, self.explainer = stream, card, timer, video, explainer
        self.video: VideoSink | None = None
        self.window = Window(f"emoedge: {stream}") if show else None
        self.live = LiveFrame()
        self.frames = self.explanations = 0

    def write(self, frame: Frame, persons: Persons, fps: float | None, source: str) -> bool:
        """Draw and write one frame; False once its live window asks to stop."""
        shown, watched = True, self.live.watched
        if self.path is not None or self.window is not None or watched:
            with self.timer("render"):
                annotated = draw(frame.image, persons, self.card)
            if watched:
                self.live.put(annotated)
            with self.timer("write"):
                if self.path is not None:
                    if self.video is None:  # image folders do not say their size up front, nor live sources their rate
                        height, width = frame.image.shape[:2]
                        self.video = VideoSink(self.path, fps or DEFAULT_FPS, (width, height))
                    self.video.write(annotated)
                if self.window is not None:
                    shown = self.window.show(annotated)
        if self.explainer is not None and self.explainer.due(self.frames) and len(persons):
            with self.timer("explain"):
                rgb = np.ascontiguousarray(frame.image[..., ::-1])
                written = self.explainer(
                    frame.index, rgb, persons.boxes, persons.ids, frame.name or source, self.stream
                )
            self.explanations += written
        self.frames += 1
        return shown

    def close(self) -> None:
        """Finalise the video, close the window, end the live view's waits; again does nothing."""
        self.live.close()
        if self.video is not None:
            self.video.close()
        if self.window is not None:
            self.window.close()
            self.window = None


class RunOutputs:
    """The run's outputs: every person record to the event log and the MQTT publisher, and the summary at the end."""

    def __init__(self, card: ModelCard, stack: ExitStack, *, events: Path | None, publisher: MqttPublisher | None):
        self.card, self.publisher = card, publisher
        self.log = stack.enter_context(EventLog(events)) if events is not None else None

    def write(self, stream: str, frame: Frame, persons: Persons) -> None:
        if not persons.has_outputs:  # a frame the model could not tag (an outage of a served model): no emotions
            return
        for i in range(len(persons)):
            record = {
                "type": "person",
                "stream": stream,
                **person_record(frame.index, frame.timestamp, persons, i, self.card),
            }
            if self.log is not None:
                self.log.write(record)
            if self.publisher is not None:
                self.publisher.publish(record, stream)

    def finish(self, summary: RunSummary) -> None:
        if self.log is not None:
            self.log.write(summary.to_record())
