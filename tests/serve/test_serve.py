"""`emoedge serve` behind a real Triton server (PyTriton's bundled binary) on 127.0.0.1, and the `triton` backend
against it: the demo clip through grpc:// and http:// gives the events of the local ONNX model.

These run in the serving library set (`make test SET=serve`: numpy < 2, which PyTriton's Python backend needs);
elsewhere they skip, and the refusal of `emoedge serve` under numpy 2 is tested instead.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import (  # type: ignore[import-not-found]
    Background,
    assert_one_line_error,
    count_lines,
    emoedge_command,
    run_cli,
)
from ports import free_ports  # type: ignore[import-not-found]
from runtime.rtsp_helpers import gstreamer_missing, start_server  # type: ignore[import-not-found]
from runtime.runtime_media import read_events  # type: ignore[import-not-found]
from serve.serve_helpers import NUMPY_2, Server, kill, serving  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.bench.clip import write_boxes_json
from emoedge.bench.models import random_checkpoint
from emoedge.errors import EmoedgeError
from emoedge.export.onnx import example_inputs, export_onnx
from emoedge.runtime.clip import make_demo_clip

TOLERANCE = 1e-5
NUMBERS = {"scores", "modality_weights", "vad"}  # the event fields compared within TOLERANCE; the rest exactly


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("serve") / "tiny.pt")


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> Path:
    return export_onnx(checkpoint, checkpoint.with_suffix(".onnx")).path


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The ONNX model served with two instances, for the module's tests."""
    # --device cpu: ONNX Runtime FP32 on both sides, as the local model it is compared with (auto picks OpenVINO, BF16)
    with serving(model, tmp_path_factory.mktemp("triton"), "--instances", "2", "--device", "cpu") as running:
        yield running


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_served_outputs_and_card_equal_the_local_models(server, model, scheme):
    remote, local = load_model(getattr(server, scheme)), load_model(model, device="cpu")
    assert remote.card == local.card  # read from the server, not from a file
    assert "Triton" in remote.reason and "'emo'" in remote.reason
    for frames, persons in ((1, 1), (1, 4), (3, 5)):
        image, body = (t.numpy() for t in example_inputs(local.card, persons, seed=persons, frames=frames))
        frame = np.arange(persons) % frames
        got, want = remote.infer(image, body, frame), local.infer(image, body, frame)
        assert sorted(got) == sorted(want)
        for name in want:
            assert got[name].shape == want[name].shape
            assert np.abs(got[name] - want[name]).max() <= TOLERANCE, (name, frames, persons)


def test_the_demo_clip_through_the_server_gives_the_local_models_events(server, model, sample_root, tmp_path):
    clip, boxes = make_demo_clip(sample_root, tmp_path / "clip", images=3, frames_per_image=4, size=(320, 240))
    logs = {}
    for label, which in (("local", str(model)), ("grpc", server.grpc), ("http", server.http)):
        logs[label] = tmp_path / f"{label}.jsonl"
        device = "cpu" if label == "local" else "auto"  # the server's backend: ONNX Runtime (the fixture's --device)
        proc = run_cli("run", "--source", str(clip), "--boxes", str(boxes), "--model", which, "--device", device,
                       "--events", str(logs[label]), "--quiet")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    local, _ = read_events(logs["local"])
    assert local, "the demo clip's boxes give persons to compare"
    for label in ("grpc", "http"):
        remote, _ = read_events(logs[label])
        assert len(remote) == len(local)
        for got, want in zip(remote, local):
            assert {k: v for k, v in got.items() if k not in NUMBERS} == {
                k: v for k, v in want.items() if k not in NUMBERS
            }
            for key in NUMBERS & want.keys():
                gap = max(abs(got[key][name] - value) for name, value in want[key].items())
                assert gap <= TOLERANCE, (label, key, gap)


def test_eval_of_the_served_model_equals_the_files(server, model, sample_root, tmp_path):
    """`emoedge eval grpc://…`: the same test-split report as the ONNX file's, computed through the server."""
    reports = {}
    for label, which in (("local", str(model)), ("served", server.grpc)):
        device = ["--device", "cpu"] if label == "local" else []  # the server's backend, ONNX Runtime
        proc = run_cli("eval", which, "--data", str(sample_root), "-o", str(tmp_path / label), "--workers", "0",
                       *device, "--quiet")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        reports[label] = json.loads((tmp_path / label / "results.json").read_text())
    assert reports["served"]["extra"]["model"] == server.grpc
    assert reports["served"]["mAP"] == pytest.approx(reports["local"]["mAP"], abs=TOLERANCE)
    assert reports["served"]["extra"]["persons"] == reports["local"]["extra"]["persons"]


def test_an_unknown_model_and_a_taken_port_are_one_line(server, model):
    url = server.grpc.rsplit("/", 1)[0] + "/nope"
    with pytest.raises(EmoedgeError, match=r"no model 'nope' ready on that server"):
        load_model(url)
    grpc_port = server.grpc.split(":")[2].split("/")[0]
    proc = run_cli("serve", str(model), "--grpc-port", grpc_port, timeout=120)
    assert_one_line_error(proc, f"grpc port {grpc_port} on 127.0.0.1: cannot listen there")


def test_tritons_log_goes_to_the_log_file_not_the_console(server):
    log = server.log.read_text()
    assert "successfully loaded 'emo'" in log
    assert "emo_0_0" in log and "emo_0_1" in log  # --instances 2: two model instances
    assert not any("model_lifecycle" in line for line in server.output)


def test_a_checkpoint_is_served_too(checkpoint, tmp_path):
    """Any model file: the checkpoint through its PyTorch backend, as loaded here with the same defaults."""
    with serving(checkpoint, tmp_path) as running:
        remote, local = load_model(running.grpc), load_model(checkpoint)
        assert remote.card == local.card and "PyTorch" in running.output[-1]
        image, body = (t.numpy() for t in example_inputs(local.card, 3, seed=3, frames=2))
        frame = np.array([0, 1, 1])
        got, want = remote.infer(image, body, frame), local.infer(image, body, frame)
        for name in want:
            assert np.abs(got[name] - want[name]).max() <= TOLERANCE, name


@pytest.mark.skipif(not NUMPY_2, reason="this library set has numpy < 2, which `emoedge serve` runs with")
def test_serve_under_numpy_2_is_refused_in_one_line(model):
    assert_one_line_error(run_cli("serve", str(model)), "numpy", "PyTriton", "emoedge[serve]")


def test_a_served_model_killed_and_restarted_mid_run(model, tmp_path):
    """A camera's run against a served model whose server is SIGKILLed (with Triton's processes) for 6 s and started
    again: the run goes on (frames untagged meanwhile), tags again within 3 s of the server being back, and its
    summary counts the outage."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    rtsp, *ports = free_ports(4)
    boxes = write_boxes_json(tmp_path / "live.json", [[[40, 40, 120, 200], [180, 40, 260, 200]]] * 20_000)
    events = tmp_path / "events.jsonl"
    camera = start_server(rtsp, tmp_path / "rtsp")
    try:
        with serving(model, tmp_path / "first", ports=ports) as first:
            argv = emoedge_command("run", "--source", f"rtsp://127.0.0.1:{rtsp}/test", "--boxes", str(boxes),
                                   "--model", first.grpc, "--events", str(events), "--quiet")  # fmt: skip
            run = Background(argv, tmp_path / "run")
            run.wait_until(lambda: count_lines(events) >= 20, "events through the first server", 120)
            kill(first)
        time.sleep(6)
        before = count_lines(events)
        with serving(model, tmp_path / "second", ports=ports):
            back = time.monotonic()
            run.wait_until(lambda: count_lines(events) > before, "events through the restarted server", 60)
            resumed = time.monotonic() - back
            print(f"tagging again {resumed:.2f} s after the restarted server answered")
            assert resumed <= 3.0
            run.send(signal.SIGTERM)
            assert run.wait(60) == 130
    finally:
        camera.stop()
    _, summary = read_events(events)
    assert summary["outcome"] == "interrupted" and summary["model_outages"] == 1
    assert summary["model_outage_s"] >= 6 and summary["untagged_frames"] > 0
    assert "Triton request failed" in run.stderr and "answers again" in run.stderr and "Traceback" not in run.stderr
