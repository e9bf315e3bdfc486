"""A live RTSP stream from a real GStreamer server on 127.0.0.1: read, lose, reconnect, never leak credentials.

The server (rtsp_server.py) runs under Debian's system Python, where the GStreamer bindings live; the test is
skipped with the reason when they are not installed (python3-gi, gir1.2-gst-rtsp-server-1.0 and the
GStreamer plugins: see .ci/run).
"""

from __future__ import annotations

import logging
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from emoedge.runtime.sources import FrameSource, SourceSettings, open_source

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
PROBE = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
print(" ".join(e for e in ("videotestsrc", "x264enc", "rtph264pay") if Gst.ElementFactory.find(e) is None))
"""


def _gstreamer_missing() -> str | None:
    """Why the server cannot run here, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "probing GStreamer timed out"
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines() or ["unknown error"]
        return f"{SYSTEM_PYTHON} cannot import gi/GstRtspServer: {lines[-1]}"
    if probe.stdout.strip():
        return f"GStreamer elements missing: {probe.stdout.strip()}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port: int, log_file: Path) -> subprocess.Popen[str]:
    """Start the server and wait (at most 30 s) until it listens."""
    with log_file.open("a") as stderr:
        server = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(port), "/test"], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    ready, _, _ = select.select([server.stdout], [], [], 30)
    if not ready or server.stdout.readline().strip() != "READY":
        _stop_server(server)
        pytest.fail(f"RTSP server did not start on port {port}: {log_file.read_text()[-2000:]}")
    return server


def _stop_server(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    server.stdout.close()


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class _Reader(threading.Thread):
    """Consumes a source on its own thread, so the test can bound every wait."""

    def __init__(self, source: FrameSource) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.count = 0
        self.sizes: set[tuple[int, ...]] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for frame in self.source:
                self.sizes.add(frame.image.shape)
                self.count = frame.index + 1
        except BaseException as exc:
            self.error = exc


def test_rtsp_stream_survives_a_server_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    reason = _gstreamer_missing()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    url = f"rtsp://user:secret@127.0.0.1:{port}/test"
    server_log = tmp_path / "server.log"
    servers = [_start_server(port, server_log)]

    def messages(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if text in r.getMessage()]

    try:
        with caplog.at_level(logging.INFO, logger="emoedge.runtime.sources"):
            source = open_source(url, settings=SourceSettings(max_outage_s=60))
            reader = _Reader(source)
            try:
                assert source.live and source.total is None
                assert source.name == f"rtsp://***@127.0.0.1:{port}/test"
                reader.start()
                _wait_until(lambda: reader.count >= 10 or not reader.is_alive(), 30, "the first frames")

                _stop_server(servers[-1])
                _wait_until(lambda: messages("stream lost") or not reader.is_alive(), 30, "the outage to be logged")
                before = reader.count
                servers.append(_start_server(port, server_log))
                _wait_until(
                    lambda: reader.count >= before + 10 or not reader.is_alive(), 60, "frames after the restart"
                )
                assert reader.error is None and reader.is_alive()
            finally:
                source.close()
                reader.join(20)
        assert not reader.is_alive() and reader.error is None
        assert reader.sizes == {(240, 320, 3)}
        assert len(messages("stream lost")) == 1
        assert len(messages("stream back after")) == 1
        assert "secret" not in caplog.text
        assert "secret" not in "".join(capfd.readouterr())
    finally:
        for server in servers:
            _stop_server(server)
