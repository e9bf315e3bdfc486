"""Several streams in one process: each stream's events are those of a run of it alone, one engine call per tick
(not per frame), streams of different lengths end on their own, outputs per stream, events to MQTT; and YOLO's
batched detection tracks each stream as `model.track` would."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from runtime.runtime_media import read_events, video_frames  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.bench.clip import write_boxes_json, write_clip
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError
from emoedge.runtime.engine import run
from emoedge.runtime.settings import RunSettings
from emoedge.runtime.sources import Frame
from emoedge.runtime.streams import StreamSpec

QUIET = RunSettings(progress=False)
LENGTHS = (10, 14, 8, 12)  # frames per stream: they end at different ticks


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    return load_model(random_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt"), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> list[StreamSpec]:
    """Four clips of 2 moving persons each, different lengths and sizes, with boxes files."""
    folder = tmp_path_factory.mktemp("streams")
    specs = []
    for i, frames in enumerate(LENGTHS):
        size = (160, 120) if i % 2 else (192, 144)
        boxes = write_clip(folder / f"s{i}.mp4", frames=frames, persons=2, size=size)
        specs.append(StreamSpec(f"door-{i}", str(folder / f"s{i}.mp4"), write_boxes_json(folder / f"s{i}.json", boxes)))
    return specs


def _key(record: dict) -> tuple[int, int]:
    return record["frame"], record["track_id"]


def test_four_streams_give_the_events_of_four_single_runs_in_one_call_per_tick(backend, streams, tmp_path) -> None:
    specs = [StreamSpec(s.id, s.source, s.boxes, tmp_path / "videos" / f"{s.id}.mp4") for s in streams]
    summary = run(specs, backend, events=tmp_path / "all.jsonl", settings=QUIET)
    persons, record = read_events(tmp_path / "all.jsonl")

    assert summary.ticks == max(LENGTHS) and summary.engine_calls == summary.ticks  # not sum(LENGTHS) calls
    assert summary.frames == sum(LENGTHS) == record["frames"] and summary.events == 2 * sum(LENGTHS)
    assert [(s.id, s.frames, s.outcome) for s in summary.streams] == [
        (spec.id, n, "ended") for spec, n in zip(specs, LENGTHS)
    ]
    for spec, frames in zip(specs, LENGTHS):
        alone = run(spec.source, backend, boxes=spec.boxes, events=tmp_path / f"{spec.id}.jsonl", settings=QUIET)
        single, _ = read_events(tmp_path / f"{spec.id}.jsonl")
        mine = [r for r in persons if r["stream"] == spec.id]
        assert alone.engine_calls == frames and len(mine) == len(single) == 2 * frames
        assert [_key(r) for r in mine] == [_key(r) for r in single]
        assert len({_key(r) for r in mine}) == len(mine)  # ids unique within the stream's frames
        for a, b in zip(mine, single):
            assert a["box"] == b["box"] and a["inferred"] == b["inferred"]
            np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-5)
            np.testing.assert_allclose(
                list(a["modality_weights"].values()), list(b["modality_weights"].values()), atol=1e-5
            )
        assert video_frames(spec.out)[0] == frames  # type: ignore[arg-type]

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(resources.files("emoedge").joinpath("schemas/events.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for line in (tmp_path / "all.jsonl").read_text().splitlines():
        assert not list(validator.iter_errors(json.loads(line))), line


def test_every_and_max_frames_apply_per_stream(backend, streams, tmp_path) -> None:
    settings = RunSettings(progress=False, every=3, max_frames=9)
    summary = run(streams, backend, events=tmp_path / "e.jsonl", settings=settings)
    assert [s.frames for s in summary.streams] == [min(n, 9) for n in LENGTHS]
    assert [s.outcome for s in summary.streams] == ["stopped", "stopped", "ended", "stopped"]
    for spec in streams[:2]:
        run(spec.source, backend, boxes=spec.boxes, events=tmp_path / f"{spec.id}.jsonl", settings=settings)
        single, _ = read_events(tmp_path / f"{spec.id}.jsonl")
        persons, _ = read_events(tmp_path / "e.jsonl")
        mine = [r for r in persons if r["stream"] == spec.id]
        assert [(_key(r), r["inferred"]) for r in mine] == [(_key(r), r["inferred"]) for r in single]
    assert summary.engine_calls < summary.ticks  # with every=3 most ticks reuse results


def test_tracked_streams_never_share_a_track_id(backend, tmp_path) -> None:
    """Boxes without ids go through ByteTrack per stream; the trackers draw ids from one counter."""
    pytest.importorskip("ultralytics")
    specs = []
    for i in range(3):
        boxes = write_clip(tmp_path / f"c{i}.mp4", frames=8, persons=2)
        specs.append(
            StreamSpec(
                f"s{i}", str(tmp_path / f"c{i}.mp4"), write_boxes_json(tmp_path / f"b{i}.json", boxes, ids=False)
            )
        )
    run(specs, backend, events=tmp_path / "e.jsonl", settings=RunSettings(progress=False, detect_every=2))
    persons, _ = read_events(tmp_path / "e.jsonl")
    ids = {spec.id: {r["track_id"] for r in persons if r["stream"] == spec.id} for spec in specs}
    assert all(len(found) == 2 for found in ids.values())  # two persons each, each on one id throughout
    assert len(set().union(*ids.values())) == 6  # and no id in two streams


def test_a_failing_stream_is_dropped_with_one_line_and_the_others_go_on(backend, streams, tmp_path, caplog) -> None:
    wrong = tmp_path / "by-name.json"  # boxes by image file name, for a video: this stream fails at its first frame
    wrong.write_text(json.dumps({"frames": [{"file": "a.jpg", "boxes": [[1, 1, 20, 20]], "ids": [1]}]}))
    specs = [streams[0], StreamSpec("broken", streams[1].source, wrong), streams[2]]
    summary = run(specs, backend, events=tmp_path / "e.jsonl", settings=QUIET)
    outcomes = {s.id: (s.frames, s.outcome) for s in summary.streams}
    assert outcomes[streams[0].id] == (LENGTHS[0], "ended") and outcomes[streams[2].id] == (LENGTHS[2], "ended")
    assert outcomes["broken"][0] == 0 and outcomes["broken"][1].startswith("failed: boxes file")
    assert "stream broken: boxes file" in caplog.text and "the other streams go on" in caplog.text
    persons, _ = read_events(tmp_path / "e.jsonl")
    assert {r["stream"] for r in persons} == {streams[0].id, streams[2].id}


def test_an_output_a_stream_cannot_write_is_one_line(backend, streams, tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    bad = [StreamSpec("a", streams[0].source, streams[0].boxes, tmp_path / "file" / "a.mp4")]
    with pytest.raises(EmoedgeError, match="output video of stream a"):
        run(bad, backend, settings=QUIET)


def test_batched_yolo_tracks_each_stream_as_track_would() -> None:
    """One predict call over two streams' frames, ByteTrack per stream, equals each stream's own `model.track`."""
    from emoedge.runtime.yolo import import_ultralytics

    try:
        import_ultralytics()
    except EmoedgeError as exc:
        pytest.skip(str(exc))
    import torch

    from emoedge.runtime.finders import YoloFinder
    from emoedge.runtime.tracking import Tracker

    def biased() -> YoloFinder:  # an untrained head sees nothing: bias it so that some anchors score 'person'
        detector = YoloFinder("yolo11n.yaml", device="cpu")
        torch.manual_seed(0)
        with torch.no_grad():
            for branch in detector.model.predictor.model.model.model[-1].cv3:
                branch[-1].bias[0] = 2.0
        return detector

    rng = np.random.default_rng(0)
    clips = [[rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(3)] for _ in range(2)]
    batched, alone = biased(), [biased(), biased()]
    predictor = batched.model.predictor
    trackers, own_trackers = [Tracker(), Tracker()], [Tracker(), Tracker()]
    found = 0
    for t in range(3):
        frames = [Frame(t, t / 25, clip[t]) for clip in clips]
        for s, (frame, detections) in enumerate(zip(frames, batched.find(frames))):
            mine = trackers[s](detections, frame.image.shape[:2])
            theirs = own_trackers[s](alone[s].find([frame])[0], frame.image.shape[:2])
            np.testing.assert_allclose(mine.boxes, theirs.boxes, atol=1e-3)
            assert mine.ids.tolist() == theirs.ids.tolist()
            found += len(mine)
    assert found > 0 and batched.model.predictor is predictor  # persons found; the predictor never rebuilt


def _mosquitto():  # the broker helpers, or skip where paho or mosquitto is missing
    pytest.importorskip("paho.mqtt.client")
    from runtime.mqtt_broker import Mosquitto, Subscriber  # type: ignore[import-not-found]

    return Mosquitto, Subscriber


def test_run_publishes_from_the_command_line_without_showing_credentials(backend, streams, tmp_path) -> None:
    """A broker that never comes up: the video work finishes, the records are counted undelivered, the one warning
    names the broker without its password."""
    pytest.importorskip("paho.mqtt.client")
    from cli_helpers import run_cli  # type: ignore[import-not-found]
    from ports import free_port  # type: ignore[import-not-found]

    model = tmp_path / "tiny.pt"
    random_checkpoint(model)
    spec = streams[2]
    proc = run_cli(
        "run", "--source", spec.source, "--boxes", str(spec.boxes), "--model", str(model), "--device", "cpu",
        "--events", str(tmp_path / "e.jsonl"), "--publish", f"mqtt://cam:s3cret@127.0.0.1:{free_port()}/site/{{stream}}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    persons, summary = read_events(tmp_path / "e.jsonl")
    assert summary["frames"] == LENGTHS[2] and summary["published"] == 0
    assert summary["undelivered"] == len(persons) > 0 and summary["dropped"] == 0
    assert "MQTT broker mqtt://***@127.0.0.1:" in proc.stderr and "not reachable" in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout + (tmp_path / "e.jsonl").read_text()


def test_events_reach_an_mqtt_broker_restarted_mid_run(backend, streams, tmp_path, monkeypatch) -> None:
    Mosquitto, Subscriber = _mosquitto()
    from emoedge.runtime.publish import MqttPublisher

    broker = Mosquitto(tmp_path).start()
    subscriber = Subscriber(broker.port, "emoedge/#")
    original, restarts, sent = MqttPublisher.publish, [], []

    def publish(self: MqttPublisher, record: dict, stream: str = "") -> bool:
        if record["frame"] == 4 and not restarts:  # the broker restarts (SIGTERM, then up again) mid-run,
            subscriber.wait_for(len(sent))  # once it has passed on what it acknowledged (its own persistence aside)
            restarts.append(record["stream"])
            broker.stop()
            broker.start()
        sent.append(record)
        return original(self, record, stream)

    monkeypatch.setattr(MqttPublisher, "publish", publish)
    try:
        summary = run(
            streams[:2], backend, events=tmp_path / "e.jsonl",
            publish=f"mqtt://user:s3cret@127.0.0.1:{broker.port}/emoedge/{{stream}}", settings=QUIET,
        )  # fmt: skip
        persons, record = read_events(tmp_path / "e.jsonl")
        received = subscriber.wait_for(len(persons), timeout=30)
    finally:
        subscriber.close()
        broker.stop()
    assert restarts and summary.dropped == 0 and summary.undelivered == 0
    assert summary.published == len(persons) == record["published"]
    by_topic: dict[str, dict] = {}
    for topic, payload in received:
        message = json.loads(payload)
        by_topic.setdefault(topic, {})[_key(message)] = message  # QoS 1 is at least once: a resend is a duplicate
    for spec in streams[:2]:  # across the outage the order may change (resends); every record is there, unchanged
        mine = {_key(r): r for r in persons if r["stream"] == spec.id}
        assert by_topic[f"emoedge/{spec.id}"] == mine


def test_a_camera_outage_never_holds_the_other_streams(backend, tmp_path) -> None:
    """A live RTSP stream (real GStreamer server) and a file: the server stops mid-run; the file stream goes on to
    its last frame while the camera is down and being reconnected; a stop request then ends the run cleanly."""
    import os
    import signal
    import threading

    from cli_helpers import wait_until  # type: ignore[import-not-found]
    from ports import free_port  # type: ignore[import-not-found]
    from runtime.rtsp_helpers import gstreamer_missing, start_server  # type: ignore[import-not-found]

    why = gstreamer_missing()
    if why:
        pytest.skip(why)
    frames = 400
    write_boxes_json(tmp_path / "file.json", write_clip(tmp_path / "file.mp4", frames=frames, persons=2))
    live_boxes = {"frames": [{"index": i, "boxes": [[10, 10, 60, 100]], "ids": [1]} for i in range(5000)]}
    (tmp_path / "live.json").write_text(json.dumps(live_boxes))
    port = free_port()
    server = start_server(port, tmp_path / "server")
    specs = [
        StreamSpec("cam", f"rtsp://127.0.0.1:{port}/test", tmp_path / "live.json"),
        StreamSpec("file", str(tmp_path / "file.mp4"), tmp_path / "file.json"),
    ]
    events = tmp_path / "e.jsonl"
    seen: dict[str, int] = {}

    def count(stream: str) -> int:
        lines = events.read_text().splitlines() if events.exists() else []
        return sum(1 for line in lines if f'"stream":"{stream}"' in line)

    def script() -> None:
        try:
            wait_until(lambda: count("cam") >= 5, "the camera's first events", 60)
            server.stop()  # the camera goes down mid-run
            seen["cam at outage"] = count("cam")
            wait_until(lambda: count("file") >= 2 * frames, "the file stream's last frame", 120)
            seen["cam after file"] = count("cam")
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # the run's stop request

    helper = threading.Thread(target=script, daemon=True)
    helper.start()
    try:
        summary = run(specs, backend, events=events, settings=QUIET)
    finally:
        helper.join(30)
        server.stop()
    outcomes = {s.id: (s.frames, s.outcome) for s in summary.streams}
    assert summary.interrupted and outcomes["file"] == (frames, "ended")
    assert outcomes["cam"][1] == "stopped" and outcomes["cam"][0] >= 5  # waiting to reconnect, not failed
    assert seen["cam after file"] - seen["cam at outage"] <= 3  # at most the frames already on their way
