"""The RTSP test server's life for tests: whether GStreamer can run it here, start (wait until it listens), stop."""

from __future__ import annotations

import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

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


def gstreamer_missing() -> str | None:
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


def start_server(port: int, log_file: Path) -> subprocess.Popen[str]:
    """Start the server and wait (at most 30 s) until it listens."""
    with log_file.open("a") as stderr:
        server = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(port), "/test"], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    ready, _, _ = select.select([server.stdout], [], [], 30)
    if not ready or server.stdout.readline().strip() != "READY":
        stop_server(server)
        pytest.fail(f"RTSP server did not start on port {port}: {log_file.read_text()[-2000:]}")
    return server


def stop_server(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    server.stdout.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
