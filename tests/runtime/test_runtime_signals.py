"""Signals stop `emoedge run` cleanly wherever it is: at start-up, mid-run, during a live outage, with two quick
signals (the second one arriving during shutdown). Each time: exit 130 within 2 s of the first signal, no traceback,
and when outputs were opened a playable MP4 with as many frames as the summary counts and an event log of whole
JSON lines ending with the summary record.

The 2 s are the product's promise (SPEC §8); the test allows 5 s so that a loaded CI machine does not fail it, and
prints the measured times.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]
from runtime.rtsp_helpers import free_port, gstreamer_missing, start_server, stop_server  # type: ignore[import-not-found]

from emoedge.export.onnx import export_onnx
from emoedge.runtime.clip import make_demo_clip

PROMISE_S, ALLOWED_S = 2.0, 5.0


@pytest.fixture(scope="module")
def files(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from model_helpers import write_checkpoint  # type: ignore[import-not-found]

    root = tmp_path_factory.mktemp("signals")
    checkpoint = write_checkpoint(root / "m.pt", ["body", "place", "scene"])
    clip, boxes = make_demo_clip(sample_root, root / "clip", images=40)  # 320 frames: seconds of work
    return {"model": export_onnx(checkpoint, root / "m.onnx").path, "clip": clip, "boxes": boxes}


def _start(source: str, files: dict[str, Path], out: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["run", "--source", source, "--model", str(files["model"]), "-o", str(out / "v.mp4")]
    args += ["--events", str(out / "e.jsonl"), "--quiet", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "emoedge", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_events(path: Path, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"no {count} events in {path} after {timeout:g} s")


def _stop(proc: subprocess.Popen[str], signals: list[int], gap: float = 0.05) -> tuple[float, str]:
    """Send `signals` `gap` s apart; (seconds from the first signal to the exit, stderr)."""
    sent = time.monotonic()
    for i, signum in enumerate(signals):
        if i:
            time.sleep(gap)
        proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    return time.monotonic() - sent, stderr


def _check_exit(proc: subprocess.Popen[str], seconds: float, stderr: str, case: str) -> None:
    print(f"{case}: exit {proc.returncode} {seconds:.2f} s after the signal (promise {PROMISE_S:g} s)")
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "terminate called" not in stderr, stderr[-2000:]
    assert seconds <= ALLOWED_S


def _check_outputs(out: Path) -> dict:
    """Whole JSON lines ending with the summary; an MP4 whose frames are the summary's frames."""
    lines = (out / "e.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    summary = records[-1]
    assert summary["type"] == "summary" and summary["interrupted"] is True
    assert all(r["type"] == "person" for r in records[:-1])
    capture = cv2.VideoCapture(str(out / "v.mp4"))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == summary["frames"] > 0
    return summary


@pytest.mark.parametrize(
    ("case", "signals"),
    [("mid-run SIGINT", [signal.SIGINT]), ("mid-run SIGTERM", [signal.SIGTERM]),
     ("two quick signals", [signal.SIGINT, signal.SIGTERM])],
)  # fmt: skip
def test_a_signal_mid_run_finishes_the_outputs(files, tmp_path, case: str, signals: list[int]) -> None:
    proc = _start(str(files["clip"]), files, tmp_path, "--boxes", str(files["boxes"]))
    _wait_for_events(tmp_path / "e.jsonl", 10)
    seconds, stderr = _stop(proc, signals)
    _check_exit(proc, seconds, stderr, case)
    summary = _check_outputs(tmp_path)
    assert summary["frames"] < 320  # it did stop early


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_start_up_is_exit_130(files, tmp_path, signum: int) -> None:
    proc = _start(str(files["clip"]), files, tmp_path, "--boxes", str(files["boxes"]))
    time.sleep(0.5)  # importing torch, loading the model
    seconds, stderr = _stop(proc, [signum])
    _check_exit(proc, seconds, stderr, f"start-up {signal.Signals(signum).name}")
    if (tmp_path / "e.jsonl").exists():  # the signal came after the outputs were opened: they are whole
        _check_outputs(tmp_path)


def test_a_signal_during_a_live_outage(files, tmp_path) -> None:
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    server = start_server(port, tmp_path / "server.log")
    no_persons = tmp_path / "none.json"
    no_persons.write_text('{"frames": []}')
    try:
        proc = _start(f"rtsp://user:s3cret@127.0.0.1:{port}/test", files, tmp_path / "out", "--boxes", str(no_persons))
        _wait_for_video(proc, tmp_path / "out" / "v.mp4")
    finally:
        stop_server(server)  # the outage begins
    time.sleep(1.5)  # inside the outage: the source waits for a frame that does not come
    seconds, stderr = _stop(proc, [signal.SIGTERM])
    _check_exit(proc, seconds, stderr, "live outage")
    assert "s3cret" not in stderr
    _check_outputs(tmp_path / "out")


def _wait_for_video(proc: subprocess.Popen[str], video: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run ended early: {proc.communicate()[1][-2000:]}")
        if video.exists() and video.stat().st_size > 0:
            time.sleep(1.0)  # a few more frames
            return
        time.sleep(0.05)
    pytest.fail("the run wrote no video frame from the stream")
