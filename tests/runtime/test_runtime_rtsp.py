"""A live RTSP stream from a real GStreamer server on 127.0.0.1: read, lose, reconnect, never leak credentials.

The server (rtsp_server.py) runs under Debian's system Python, where the GStreamer bindings live; the test is
skipped with the reason when they are not installed (python3-gi, gir1.2-gst-rtsp-server-1.0 and the
GStreamer plugins: see .ci/run).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from cli_helpers import wait_until  # type: ignore[import-not-found]
from ports import free_port  # type: ignore[import-not-found]
from runtime.rtsp_helpers import gstreamer_missing, start_server  # type: ignore[import-not-found]

from emoedge.errors import EmoedgeError
from emoedge.runtime.sources import FrameSource, SourceSettings, open_source


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
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    url = f"rtsp://user:secret@127.0.0.1:{port}/test"
    server_logs = tmp_path / "server"
    servers = [start_server(port, server_logs)]

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
                wait_until(lambda: reader.count >= 10 or not reader.is_alive(), "the first frames", 30)

                servers[-1].stop()
                wait_until(lambda: bool(messages("stream lost")) or not reader.is_alive(), "the outage logged", 30)
                before = reader.count
                servers.append(start_server(port, server_logs))
                wait_until(lambda: reader.count >= before + 10 or not reader.is_alive(), "frames after the restart", 60)
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
            server.stop()


def test_a_camera_not_up_at_start_is_waited_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Appliances boot with their cameras: the source waits (connect_timeout_s) like an outage, then streams."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="emoedge.runtime.sources"):
        source = open_source(f"rtsp://127.0.0.1:{port}/test", settings=SourceSettings(connect_timeout_s=60))
        reader = _Reader(source)
        reader.start()
        server = None
        try:
            wait_until(lambda: "not up yet" in caplog.text, "the wait logged", 10)
            server = start_server(port, tmp_path / "server")
            wait_until(lambda: reader.count >= 5 or not reader.is_alive(), "frames once the camera is up", 60)
            assert reader.error is None
        finally:
            source.close()
            reader.join(20)
            if server is not None:
                server.stop()
    assert "up after" in caplog.text


def test_a_camera_that_never_comes_up_is_one_line_after_the_connect_timeout() -> None:
    source = open_source(
        f"rtsp://127.0.0.1:{free_port()}/test", settings=SourceSettings(connect_timeout_s=1.0, open_timeout_s=0.2)
    )
    with pytest.raises(EmoedgeError, match=r"cannot open stream .*no answer within 1 s \(connect_timeout_s\)"):
        for _ in source:
            pass


def test_a_silent_stream_is_lost_after_the_read_timeout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A server that keeps its connection but sends nothing (paused with SIGSTOP): the outage shows after about
    `read_timeout_s`, not twice that (OpenCV's FFmpeg reader tries twice; emoedge gives it half each time)."""
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    import signal
    import time

    port, timeout = free_port(), 2.0
    server = start_server(port, tmp_path / "server")
    source = open_source(f"rtsp://127.0.0.1:{port}/test", settings=SourceSettings(read_timeout_s=timeout))
    reader = _Reader(source)
    try:
        with caplog.at_level(logging.WARNING, logger="emoedge.runtime.sources"):
            reader.start()
            wait_until(lambda: reader.count >= 10 or not reader.is_alive(), "the first frames", 30)
            server.send(signal.SIGSTOP)
            paused = time.monotonic()
            wait_until(lambda: "stream lost" in caplog.text, "the outage", 30)
            seconds = time.monotonic() - paused
    finally:
        server.send(signal.SIGCONT)
        source.close()
        reader.join(20)
        server.stop()
    print(f"silent stream declared lost {seconds:.2f} s after the pause (read_timeout_s {timeout:g})")
    assert seconds < 1.75 * timeout  # twice the timeout before the fix
