"""Video sources: every frame of a file in order, folders with a corrupt image, errors, redaction, reconnect,
settings."""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from ports import free_port  # type: ignore[import-not-found]

import emoedge.runtime.sources as sources
from emoedge.errors import EmoedgeError
from emoedge.runtime.redact import redact_url
from emoedge.runtime.sources import SourceSettings, open_source
from emoedge.settings import from_dict

FRAMES, WIDTH, HEIGHT, FPS = 30, 160, 120, 30.0


def _draw(i: int) -> np.ndarray:
    """Frame i shows i in binary as five black/white stripes: robust to lossy mp4v, so order is checkable."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(5):
        if i >> bit & 1:
            image[:, bit * 32 : (bit + 1) * 32] = 255
    return image


def _read(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(5) if image[:, bit * 32 + 8 : bit * 32 + 24].mean() > 128)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(FRAMES):
        writer.write(_draw(i))
    writer.release()
    return path


def _source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("emoedge-source")]


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.001)


def _wait_for_queue(source: sources.FrameSource, length: int) -> None:
    _wait_until(lambda: len(source._mailbox) == length, f"{length} queued frame(s)")


def test_video_file_delivers_every_frame_in_order(video: Path) -> None:
    with open_source(str(video)) as source:
        assert (source.live, source.fps, source.size, source.total) == (False, FPS, (WIDTH, HEIGHT), FRAMES)
        assert source.name == str(video)
        frames = list(source)
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(FRAMES)])
    assert all(f.image.shape == (HEIGHT, WIDTH, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [_read(f.image) for f in frames] == list(range(FRAMES))
    assert source.dropped == 0


def test_slow_consumer_of_a_file_loses_nothing(video: Path) -> None:
    with open_source(str(video), settings=SourceSettings(file_queue=2)) as source:
        shown = []
        for frame in source:
            # Take the next frame only once the producer is blocked on a full queue (or has queued all that is left).
            _wait_for_queue(source, min(2, FRAMES - 1 - frame.index))
            shown.append(_read(frame.image))
    assert shown == list(range(FRAMES)) and source.dropped == 0


def test_leaving_early_releases_the_decoder_thread(video: Path) -> None:
    with open_source(str(video)) as source:
        for frame in source:
            if frame.index == 2:
                break
    assert not _source_threads()


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    for i, name in enumerate(["a.png", "c.jpg", "d.PNG", "e.bmp"]):
        assert cv2.imwrite(str(tmp_path / name), np.full((24, 32, 3), 40 * (i + 1), np.uint8))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_skips_a_corrupt_image_with_a_warning(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="emoedge.runtime.sources"), open_source(str(folder)) as source:
        assert (source.live, source.fps, source.total) == (False, None, 5)
        frames = list(source)
    assert [round(float(f.image.mean())) for f in frames] == [40, 80, 120, 160]  # a, c, d, e: name order
    # each frame keeps its place in the folder: boxes given by index stay on their image
    assert [(f.index, f.timestamp, f.name) for f in frames] == [
        (i, float(i), name) for i, name in [(0, "a.png"), (2, "c.jpg"), (3, "d.PNG"), (4, "e.bmp")]
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "b.png" in warnings[0]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{tmp}/missing.mp4", "video file not found: {tmp}/missing.mp4"),
        ("{tmp}/text.mp4", "cannot read video {tmp}/text.mp4"),
        ("{tmp}/empty", "image folder {tmp}/empty is empty"),
        ("ftp://user:secret@example.com/x", "bad stream URL ftp://***@example.com/x: unsupported scheme"),
        ("rtsp://user:secret@/x", "bad stream URL rtsp://***@/x: expected scheme://host"),
        ("rtsp://user:secret@127.0.0.1:99999/x", "bad stream URL rtsp://***@127.0.0.1:99999/x: the port"),
        ("rtsp://user:secret@127.0.0.1:{port}/x", "cannot open stream rtsp://***@127.0.0.1:{port}/x"),
        ("http://user:secret@127.0.0.1:{port}/x", "cannot open stream http://***@127.0.0.1:{port}/x"),
        (
            "rtsp://user:se?cr#et/x@127.0.0.1:{port}/x",
            "bad stream URL rtsp://***@127.0.0.1:{port}/x: the user name "
            "or password holds / ? #; write / as %2F, ? as %3F, # as %23",
        ),
        ("rtsp://user:se@cr%2Fet@127.0.0.1:{port}/x", "cannot open stream rtsp://***@127.0.0.1:{port}/x"),
        ("63", "cannot open webcam 63: no such camera"),
    ],
)
def test_errors_are_one_line_and_name_the_source(
    spec: str, expected: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Files fail when opened; live sources, opened on the decoding thread, when iterated. Neither prints a native
    FFmpeg or OpenCV line of its own."""
    (tmp_path / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    port = free_port()
    with pytest.raises(EmoedgeError) as caught:
        list(open_source(spec.format(tmp=tmp_path, port=port), settings=SourceSettings(connect_timeout_s=0)))
    message = str(caught.value)
    assert message.startswith(expected.format(tmp=tmp_path, port=port)) and "\n" not in message
    assert "secret" not in message and "cr#et" not in message
    assert "".join(capfd.readouterr()) == ""
    assert not _source_threads()


def test_silent_stream_fails_after_the_connect_timeout(capfd: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as server:  # accepts the connection, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"rtsp://admin:secret@127.0.0.1:{server.getsockname()[1]}/live"
        with pytest.raises(
            EmoedgeError, match=r"cannot open stream rtsp://\*\*\*@127\.0\.0\.1:\d+/live.*timeout 0\.5 s"
        ):
            list(open_source(url, settings=SourceSettings(open_timeout_s=0.5, connect_timeout_s=0)))
    assert "".join(capfd.readouterr()) == ""


def test_a_live_source_not_up_is_retried_quietly_until_the_connect_timeout(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Every attempt fails (a refused port): emoedge says once that it waits and once that it gives up; the attempts
    themselves print nothing (FFmpeg and OpenCV would print two lines each)."""
    attempts = []
    url = f"rtsp://u:secret@127.0.0.1:{free_port()}/x"

    def opener() -> cv2.VideoCapture | None:
        attempts.append(url)
        return sources._open_capture(url, SourceSettings())

    settings = SourceSettings(backoff_s=(0.01, 0.02), connect_timeout_s=0.3)
    source = sources._CaptureSource("cam", None, live=True, settings=settings, opener=opener, unavailable="no cam")
    with caplog.at_level(logging.WARNING, logger="emoedge.runtime.sources"), pytest.raises(EmoedgeError) as caught:
        list(source._start())
    assert str(caught.value) == "no cam; no answer within 0.3 s (connect_timeout_s)"
    assert len(attempts) > 3 and [r.getMessage() for r in caplog.records] == [
        "cam: not up yet; waiting up to 0.3 s for it (connect_timeout_s)"
    ]
    assert "".join(capfd.readouterr()) == ""


class _BlockingCapture:
    """A capture whose read never returns until released: a stream stuck inside FFmpeg."""

    def __init__(self) -> None:
        self.unblock = threading.Event()

    def get(self, prop: int) -> float:
        return 0.0

    def read(self) -> tuple[bool, None]:
        self.unblock.wait()
        return False, None

    def release(self) -> None:
        self.unblock.set()


@pytest.mark.parametrize("wait", ["connect", "reconnect back-off", "frame"])
def test_an_interrupt_ends_every_wait_of_a_live_source(wait: str) -> None:
    """The one stop flag: whatever a live source waits for (a camera not up yet, the next reconnect attempt, a frame
    from a stream gone silent), `interrupt` ends its iterator at once. Every wait here would last a minute."""
    stuck = _BlockingCapture()
    settings = SourceSettings(backoff_s=(60.0, 60.0), connect_timeout_s=60.0)
    capture, opener = {
        "connect": (None, lambda: None),
        "reconnect back-off": (_FakeCapture(2), lambda: None),
        "frame": (stuck, lambda: None),
    }[wait]
    source = sources._CaptureSource("cam", capture, live=True, settings=settings, opener=opener)._start()
    frames: list[int] = []
    reader = threading.Thread(target=lambda: frames.extend(f.index for f in source), daemon=True)
    reader.start()
    try:
        time.sleep(0.2)  # into the wait
        if wait == "reconnect back-off":  # both frames read (a busy machine may take longer), the source waiting
            deadline = time.monotonic() + 10
            while not (len(frames) + source.dropped == 2 and source.state == "reconnecting") and (
                time.monotonic() < deadline
            ):
                time.sleep(0.01)
        assert reader.is_alive()
        source.interrupt()
        reader.join(10.0)
        assert not reader.is_alive(), f"the {wait} wait did not end"
    finally:
        stuck.unblock.set()
        source.close()
    if wait == "reconnect back-off":  # a live source keeps the newest: the second frame may overwrite the first untaken
        assert source.dropped <= 1 and frames == list(range(2 - source.dropped))  # numbered in delivery order
    else:
        assert frames == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://user:pass@host:554/s", "rtsp://***@host:554/s"),
        ("rtsp://user@host/s", "rtsp://***@host/s"),
        ("RTSP://u:p@h", "RTSP://***@h"),
        ("rtsp://user:p@ss@10.0.0.1/s?ch=1", "rtsp://***@10.0.0.1/s?ch=1"),  # unencoded @ in password
        ("rtsp://u:p@ss/x@cam/live", "rtsp://***@cam/live"),  # unencoded @ and / in password
        ("rtsp://user:p@ss@10.0.0.1/s?mail=a@b", "rtsp://***@b"),  # hides too much rather than too little
        ("rtsp://u:p@ss@cam/s?mail=a@b!c", "rtsp://***@cam/s?mail=a@b!c"),
        ("rtsp://u:p@[fe80::1]:554/s", "rtsp://***@[fe80::1]:554/s"),
        ("http://cam/video.cgi?user=admin&pwd=1234&ch=1", "http://cam/video.cgi?user=admin&pwd=***&ch=1"),
        ("https://h/w.pt?X-Amz-Signature=ab&t=1", "https://h/w.pt?X-Amz-Signature=***&t=1"),
        ("failed: 'http://a:b@cam/x' and https://c:d@cam2", "failed: 'http://***@cam/x' and https://***@cam2"),
        ("rtsp://host:554/no-credentials", "rtsp://host:554/no-credentials"),
        ("/videos/user@home.mp4", "/videos/user@home.mp4"),
        ("rtsp://user:pa?ss#wo/rd@10.0.0.5:554/stream", "rtsp://***@10.0.0.5:554/stream"),  # raw ? # / in password
        ("rtsp://u:a/b@c@host/x (timeout)", "rtsp://***@host/x (timeout)"),
        ("mqtt://u:p?w@broker", "mqtt://***@broker"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


class _FakeCapture:
    """A stream of `frames` frames of grey level `level`, then a drop."""

    def __init__(self, frames: int, level: int = 0) -> None:
        self.left = frames
        self.level = level
        self.released = False

    def get(self, prop: int) -> float:
        return 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.left -= 1
        threading.Event().wait(0.001)  # a camera's pace, so the producer does not spin; no test waits on it
        return (True, np.full((4, 4, 3), self.level, np.uint8)) if self.left >= 0 else (False, None)

    def release(self) -> None:
        self.released = True


FAST_BACKOFF = SourceSettings(backoff_s=(0.01, 0.04))


def _live(
    capture: _FakeCapture, opener: Callable[[], _FakeCapture | None], settings: SourceSettings
) -> sources.FrameSource:
    return sources._CaptureSource(
        "rtsp://user:secret@cam/s", capture, live=True, settings=settings, opener=opener
    )._start()


def test_live_source_reconnects_and_logs_the_outage_once(caplog: pytest.LogCaptureFixture) -> None:
    first, second = _FakeCapture(3, level=1), _FakeCapture(10**6, level=2)
    attempts = iter([None, None, None, second])  # three failed reopen attempts, then the stream is back
    with (
        caplog.at_level(logging.INFO, logger="emoedge.runtime.sources"),
        _live(first, lambda: next(attempts), FAST_BACKOFF) as source,
    ):
        assert source.name == "rtsp://***@cam/s" and source.total is None
        for expected_index, frame in enumerate(source):
            assert frame.index == expected_index
            if frame.image[0, 0, 0] == 2:  # a frame from the reopened stream
                break
    assert first.released and second.released and not _source_threads()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("stream lost" in m for m in messages) == 1  # once per outage, not once per attempt
    assert sum("stream back after" in m for m in messages) == 1
    assert "secret" not in caplog.text


def test_live_source_gives_up_after_max_outage() -> None:
    settings = SourceSettings(backoff_s=(0.01, 0.04), max_outage_s=0.2)
    with (
        _live(_FakeCapture(2), lambda: None, settings) as source,
        pytest.raises(EmoedgeError, match=r"rtsp://\*\*\*@cam/s: stream lost for .* giving up") as caught,
    ):
        list(source)
    assert "secret" not in str(caught.value)


def test_live_source_without_reconnect_ends_when_the_stream_drops() -> None:
    def opener() -> None:
        raise AssertionError("reconnect=False, yet the stream was reopened")

    with _live(_FakeCapture(2), opener, SourceSettings(reconnect=False)) as source:
        assert len(list(source)) <= 2


def test_live_mailbox_keeps_only_the_newest_frame() -> None:
    mailbox = sources._Mailbox(1, keep_latest=True)
    images = [np.full((2, 2, 3), i, np.uint8) for i in range(5)]
    for i, image in enumerate(images):
        assert mailbox.put((image, float(i)))
    assert mailbox.dropped == 4
    image, wall = mailbox.get()
    assert wall == 4.0 and image is images[4]
    mailbox.finish(None)
    assert mailbox.get() is None


def test_settings_from_a_mapping() -> None:
    data = {"open_timeout_s": 1, "backoff_s": [0.25, 4], "file_queue": 8, "reconnect": False, "max_outage_s": 30}
    assert from_dict(SourceSettings, data) == SourceSettings(1.0, 5.0, (0.25, 4.0), 8, False, 30.0)
    assert from_dict(SourceSettings, {}) == SourceSettings()
    with pytest.raises(EmoedgeError, match=r"^open_timeout: unknown key \(did you mean 'open_timeout_s'\?\)$"):
        from_dict(SourceSettings, {"open_timeout": 1})
    with pytest.raises(EmoedgeError, match=r"^file_queue 0: expected an integer >= 1"):
        from_dict(SourceSettings, {"file_queue": 0})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"open_timeout_s": 0}, "open_timeout_s 0.0: expected a number > 0"),
        ({"read_timeout_s": math.nan}, "read_timeout_s: expected a finite number, got nan"),
        ({"read_timeout_s": "5"}, "read_timeout_s: expected float, got '5'"),
        ({"backoff_s": (0.0, 8.0)}, "backoff_s[0] 0.0: expected a number > 0"),
        ({"backoff_s": (0.5, math.inf)}, "backoff_s[1]: expected a finite number, got inf"),
        ({"backoff_s": (8.0, 0.5)}, "backoff_s (8.0, 0.5): expected first <= longest"),
        ({"backoff_s": (0.5,)}, "backoff_s: expected 2 values, got 1 ((0.5,))"),
        ({"file_queue": 0}, "file_queue 0: expected an integer >= 1"),
        ({"file_queue": 2.5}, "file_queue: expected int, got 2.5"),
        ({"max_outage_s": -1.0}, "max_outage_s -1.0: expected a number > 0"),
        ({"connect_timeout_s": -1}, "connect_timeout_s -1.0: expected a number >= 0"),
    ],
)
def test_bad_settings_are_one_line_naming_the_field(values: dict, message: str) -> None:
    with pytest.raises(EmoedgeError) as caught:
        SourceSettings(**values)
    assert str(caught.value) == message
