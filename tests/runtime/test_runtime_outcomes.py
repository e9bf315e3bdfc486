"""Every end of a run finalises it: the videos playable with the frames the summary counts, and the event log ending
with a summary that names the outcome (completed, interrupted, failed: <reason>) — also when the model fails for good.
A served model's outage (`ModelUnavailable`) is waited for: frames go on untagged, tagging resumes when it answers,
and only an outage past `--model-timeout-s` fails the run.

The model here is a local one whose calls are made to fail on cue (`_Flaky`): the run's handling of the errors a
served model raises is the subject. The same against a real Triton server killed and restarted is in
tests/serve/test_serve.py (the serving set).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from runtime.runtime_media import read_events, video_frames  # type: ignore[import-not-found]

from emoedge.backends import Backend, load_model
from emoedge.bench.clip import write_boxes_json, write_clip
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError, ModelUnavailable
from emoedge.runtime.engine import run
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.streams import StreamSpec
from emoedge.runtime.tagger import RETRY_S

FRAMES = 60
LONG = 3000  # frames of the clip that outlasts an outage (untagged frames go by at hundreds a second)


class _Flaky(Backend):
    """A loaded model whose calls number `first` to `first + count - 1` (1-based) fail: with `ModelUnavailable` (a
    served model gone for now) or, when `fatal`, with a plain EmoedgeError (a model that cannot answer at all)."""

    def __init__(self, inner: Backend, first: int, count: int = 10**9, *, fatal: bool = False) -> None:
        self.inner, self.first, self.count, self.fatal = inner, first, count, fatal
        self.name, self.card, self.reason = inner.name, inner.card, inner.reason
        self.device, self.precision, self.max_frames = inner.device, inner.precision, inner.max_frames
        self.calls = 0

    @property
    def input_device(self) -> str:
        return self.inner.input_device

    def _infer(self, image: Any, body: Any, frame: Any) -> dict:
        self.calls += 1
        if self.first <= self.calls < self.first + self.count:
            if self.fatal:
                raise EmoedgeError("model x: the request was refused (shape)")
            raise ModelUnavailable("model grpc://127.0.0.1:1/emo: Triton request failed (connection refused)")
        return self.inner._infer(image, body, frame)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("outcomes")
    made: dict = {"model": load_model(random_checkpoint(folder / "m.pt"), device="cpu", precision="fp32")}
    for name, frames in (("clip", FRAMES), ("long", LONG)):
        made[name] = folder / f"{name}.mp4"
        made[f"{name}_boxes"] = write_boxes_json(folder / f"{name}.json", write_clip(made[name], frames, 2))
    return made


def _spec(media: dict, out: Path, clip: str = "clip") -> list[StreamSpec]:
    return [StreamSpec("cam0", str(media[clip]), media[f"{clip}_boxes"], out)]


def _valid(record: dict) -> None:
    schema = json.loads(resources.files("emoedge").joinpath("schemas/events.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(record)


def test_a_completed_run_says_so(media, tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    summary = run(_spec(media, tmp_path / "v.mp4"), media["model"], events=events,
                  settings=RunSettings(progress=False))  # fmt: skip
    _, record = read_events(events)
    assert summary.outcome == record["outcome"] == "completed" and record["model_outages"] == 0
    _valid(record)


def test_a_model_that_fails_for_good_still_finalises_every_output(media, tmp_path: Path) -> None:
    flaky = _Flaky(media["model"], 1, fatal=True)
    events, video = tmp_path / "e.jsonl", tmp_path / "v.mp4"
    with pytest.raises(EmoedgeError, match="the request was refused"):
        run(_spec(media, video), flaky, events=events, settings=RunSettings(progress=False))
    persons, record = read_events(events)  # whole lines, the summary last
    assert record["outcome"] == "failed: model x: the request was refused (shape)"
    assert record["streams"][0]["outcome"].startswith("failed: model x")
    assert persons == [] and video_frames(video)[0] == record["frames"]
    _valid(record)


def test_an_outage_of_the_model_is_waited_for(media, tmp_path: Path) -> None:
    """The 5th call fails as a restarting server's would: the frames until the retry half a second later are written
    untagged, and tagging resumes when the model answers."""
    flaky = _Flaky(media["model"], 5, 1)
    events, video = tmp_path / "e.jsonl", tmp_path / "v.mp4"
    settings = RunSettings(progress=False, every=4)  # the model every 4th frame of a track: a quicker clip
    summary = run(_spec(media, video, "long"), flaky, events=events, settings=settings)
    persons, record = read_events(events)
    assert summary.outcome == "completed" and record["model_outages"] == 1 and record["model_outage_s"] >= RETRY_S
    assert 0 < record["untagged_frames"] < LONG and record["frames"] == LONG == video_frames(video)[0]
    tagged = sorted({p["frame"] for p in persons})
    assert len(tagged) == LONG - record["untagged_frames"] and tagged[-1] == LONG - 1  # events resumed
    missing = sorted(set(range(LONG)) - set(tagged))  # one outage: one run of untagged frames, after the first
    assert missing == list(range(missing[0], missing[-1] + 1)) and missing[0] > 0
    assert record["events"] == len(persons)
    _valid(record)


def test_an_outage_past_the_model_timeout_fails_the_run_in_one_line(media, tmp_path: Path) -> None:
    flaky = _Flaky(media["model"], 3)
    events = tmp_path / "e.jsonl"
    settings = RunSettings(progress=False, model_timeout_s=0.3)
    with pytest.raises(EmoedgeError, match=r"connection refused\); no answer for \d+ s \(--model-timeout-s 0.3\)"):
        run(_spec(media, tmp_path / "v.mp4", "long"), flaky, events=events, settings=settings)
    _, record = read_events(events)
    assert record["outcome"].startswith("failed: model grpc://") and record["model_outages"] == 1
    assert 0 < record["untagged_frames"] < LONG - 2
    _valid(record)
