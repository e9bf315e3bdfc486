"""The RTSP test server's life for tests: whether GStreamer can run it here, and starting it (until it listens)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cli_helpers import Background  # type: ignore[import-not-found]

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


def start_server(port: int, logs: Path) -> Background:
    """Start the server, its output in the folder `logs`, and wait (at most 30 s) until it listens; `stop()` it."""
    server = Background([SYSTEM_PYTHON, str(SERVER), str(port), "/test"], logs)
    try:
        server.wait_until(lambda: "READY" in server.stdout, f"the RTSP server listening on port {port}", 30)
    except BaseException:
        server.stop()
        raise
    return server
