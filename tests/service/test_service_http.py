"""The run's HTTP server against a real run: health, readiness, the streams API (streams added and removed while the
others go on), /metrics, live frames, the token, and bad requests, each a 4xx with a one-line JSON error that leaves
the run going."""

from __future__ import annotations

import socket

import cv2
import numpy as np
import pytest
import requests
from cli_helpers import wait_until  # type: ignore[import-not-found]
from prometheus_client.parser import text_string_to_metric_families
from service.service_helpers import Progress, clips, served  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.bench.models import random_checkpoint
from emoedge.runtime.streams import StreamSpec

FRAMES = 1500  # long enough to outlast every test of the module on a slow machine
TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("service")
    return {"model": random_checkpoint(folder / "m.pt"), **clips(folder, ["a", "b", "c"], FRAMES)}


@pytest.fixture(scope="module")
def backend(media: dict):
    return load_model(media["model"], device="cpu", precision="fp32")


def _specs(media: dict, *names: str) -> list[StreamSpec]:
    return [StreamSpec(name, str(media[name][0]), media[name][1]) for name in names]


def test_health_streams_metrics_and_live_frames(media, backend) -> None:
    with served(_specs(media, "a", "b"), backend) as run:
        wait_until(lambda: run.get("/readyz").status_code == 200, "readiness")
        assert run.get("/readyz").json() == {"status": "ready"}
        assert run.get("/healthz").status_code == 200  # files are never stale
        streams = run.streams()
        assert set(streams) == {"a", "b"}
        assert streams["a"]["state"] == "reading" and streams["a"]["live"] is False
        wait_until(lambda: all(s["persons"] == 2 for s in run.streams().values()), "tracks in every stream")
        track = run.streams()["a"]["tracks"][0]
        assert track["id"] in (10, 11) and len(track["box"]) == 4 and 0 < len(track["top"]) <= 3
        assert abs(sum(track["weights"].values()) - 1) < 0.01 and set(track["weights"]) == {"body", "place", "scene"}

        page = run.get("/")
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "/api/streams" in page.text and ".mjpg" in page.text

        metrics = {f.name: f for f in text_string_to_metric_families(run.get("/metrics").text)}
        frames = {s.labels["stream"]: s.value for s in metrics["emoedge_stream_frames"].samples}
        assert set(frames) == {"a", "b"} and all(v > 0 for v in frames.values())
        state = {
            (s.labels["stream"], s.labels["emoedge_stream_state"]): s.value
            for s in metrics["emoedge_stream_state"].samples
        }
        assert state[("a", "reading")] == 1 and state[("a", "live")] == 0
        stages = {s.labels["stage"] for s in metrics["emoedge_stage_seconds"].samples}
        assert {"decode", "detect", "preprocess", "engine"} <= stages
        assert next(iter(metrics["emoedge_engine_calls"].samples)).value > 0
        assert next(iter(metrics["emoedge_model_available"].samples)).value == 1
        info = next(iter(metrics["emoedge_model_info"].samples)).labels
        assert "boxes file" in info["persons"] and info["backend"]

        snapshot = run.get("/streams/a.jpg")
        assert snapshot.status_code == 200 and snapshot.headers["Content-Type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(snapshot.content, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (120, 160, 3)
        shown = _mjpeg_frames(run.url + "/streams/b.mjpg", 3)
        assert len(shown) == 3 and len({frame.tobytes() for frame in shown}) > 1  # the image changes
        assert all(frame.shape == (120, 160, 3) for frame in shown)


def test_streams_added_and_removed_while_the_others_go_on(media, backend) -> None:
    """POST adds a 3rd stream, DELETE removes one: the stream that stays never pauses for a second."""
    with served(_specs(media, "a", "b"), backend) as run:
        wait_until(lambda: run.get("/readyz").status_code == 200, "readiness")
        with Progress(lambda: run.engine.views()[0].frames) as stays:
            added = run.request("POST", "/api/streams", json={"id": "c", "source": str(media["c"][0]),
                                                               "boxes": str(media["c"][1])})  # fmt: skip
            assert added.status_code == 201, added.text
            assert added.json()["id"] == "c" and added.json()["state"] == "reading"
            wait_until(lambda: run.streams()["c"]["frames"] > 10, "frames of the added stream")
            removed = run.request("DELETE", "/api/streams/b")
            assert removed.status_code == 200 and removed.json() == {"removed": "b"}
            wait_until(lambda: run.streams()["a"]["frames"] > run.streams()["c"]["frames"] / 2 + 20, "more frames")
        streams = run.streams()
        assert streams["b"]["state"] == "removed" and streams["c"]["state"] == "reading"
        assert stays.samples > 10 and stays.longest_pause_s < 1.0, stays.longest_pause_s
        assert run.request("DELETE", "/api/streams/b").status_code == 404  # removed already
        again = run.request(
            "POST", "/api/streams", json={"id": "b", "source": str(media["b"][0]), "boxes": str(media["b"][1])}
        )
        assert again.status_code == 201, again.text  # a removed stream's id may be used again


BAD: list[tuple[str, str, dict, int, str]] = [
    # (method, path, request keyword arguments, status, a word of the error)
    ("GET", "/nothing", {}, 404, "no such page"),
    ("GET", "/../../etc/passwd", {}, 404, "no such page"),
    ("GET", "/streams/..%2F..%2Fetc%2Fpasswd.mjpg", {}, 404, "no such page"),
    ("GET", "/streams/zzz.mjpg", {}, 404, "no running stream"),
    ("GET", "/streams/zzz.jpg", {}, 404, "no running stream"),
    ("DELETE", "/api/streams/zzz", {}, 404, "no running stream"),
    ("DELETE", "/api/streams/..", {}, 404, "no such page"),
    ("PUT", "/api/streams", {}, 405, "not allowed"),
    ("DELETE", "/metrics", {}, 405, "not allowed"),
    ("POST", "/api/streams", {"data": "{not json"}, 400, "not JSON"),
    ("POST", "/api/streams", {"json": ["a", "list"]}, 400, "expected an object"),
    ("POST", "/api/streams", {"json": {"id": "x"}}, 400, "source"),
    ("POST", "/api/streams", {"json": {"source": "/x.mp4"}}, 400, "id"),
    ("POST", "/api/streams", {"json": {"id": "x", "source": "/x.mp4", "out": "/etc/x.mp4"}}, 400, "unknown key"),
    ("POST", "/api/streams", {"json": {"id": "../etc", "source": "/x.mp4"}}, 400, "stream id"),
    ("POST", "/api/streams", {"json": {"id": 7, "source": "/x.mp4"}}, 400, "expected str"),
    ("POST", "/api/streams", {"json": {"id": "x", "source": ""}}, 400, "empty source"),
    ("POST", "/api/streams", {"json": {"id": "a", "source": "/x.mp4"}}, 409, "already running"),
    ("POST", "/api/streams", {"json": {"id": "x", "source": "ftp://cam/x"}}, 422, "unsupported scheme"),
    ("POST", "/api/streams", {"json": {"id": "x", "source": "rtsp://user:pw@/x"}}, 422, "expected scheme://host"),
    ("POST", "/api/streams", {"json": {"id": "x", "source": "/no/such.mp4"}}, 422, "not found"),
    ("POST", "/api/streams", {"json": {"id": "x", "source": "/x.mp4", "boxes": "/no/boxes.json"}}, 400, "boxes"),
    ("POST", "/api/streams", {"data": b"{" + b" " * 20_000 + b"}"}, 413, "at most"),
]


def test_bad_requests_get_a_4xx_and_the_run_goes_on(media, backend) -> None:
    with served(_specs(media, "a"), backend) as run:
        wait_until(lambda: run.get("/readyz").status_code == 200, "readiness")
        for method, path, kwargs, status, word in BAD:
            answer = _raw(run.url, method, path, **kwargs) if ".." in path else run.request(method, path, **kwargs)
            assert answer.status_code == status, (method, path, answer.status_code, answer.text)
            error = answer.json()["error"]
            assert word in error and "\n" not in error and "pw" not in error, (path, error)
        chunked = run.request("POST", "/api/streams", data=iter([b'{"id": "x", ', b'"source": "/x.mp4"}']))
        assert chunked.status_code == 411
        before = run.streams()["a"]["frames"]
        wait_until(lambda: run.streams()["a"]["frames"] > before, "frames after the bad requests")
        assert set(run.streams()) == {"a"}


def test_a_watcher_that_reads_nothing_never_holds_the_run(media, backend) -> None:
    """A client that asks for a stream's frames and never reads them: the run goes on at its pace."""
    with served(_specs(media, "a"), backend) as run:
        wait_until(lambda: run.get("/readyz").status_code == 200, "readiness")
        host, port = run.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as stuck:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.sendall(f"GET /streams/a.mjpg HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            wait_until(lambda: run.engine.live_frame("a").watched, "the watcher")
            start = run.streams()["a"]["frames"]
            wait_until(lambda: run.streams()["a"]["frames"] > start + 400, "400 frames with a watcher reading nothing")


def test_a_token_is_asked_on_every_request(media, backend) -> None:
    with served(_specs(media, "a"), backend, token=TOKEN) as run:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        wait_until(lambda: run.get("/readyz", headers=bearer).status_code == 200, "readiness")
        for path in ("/", "/metrics", "/healthz", "/readyz", "/api/streams", "/streams/a.jpg", "/streams/a.mjpg"):
            missing = run.get(path)
            assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer", path
            assert run.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 403
            assert run.get(path + "?token=nearly-" + TOKEN).status_code == 403
        assert run.get("/api/streams", headers=bearer).status_code == 200
        assert run.get(f"/streams/a.jpg?token={TOKEN}").status_code == 200  # what the page's <img> does
        denied = run.request("POST", "/api/streams", json={"id": "x", "source": str(media["b"][0])})
        assert denied.status_code == 401 and set(run.streams(headers=bearer)) == {"a"}


def test_credentials_of_stream_urls_never_leave_the_run(media, backend) -> None:
    with served(_specs(media, "a"), backend) as run:
        wait_until(lambda: run.get("/readyz").status_code == 200, "readiness")
        url = "rtsp://admin:hunter2@127.0.0.1:1/cam"  # nothing listens: it reconnects until removed
        added = run.request("POST", "/api/streams", json={"id": "cam", "source": url, "boxes": str(media["a"][1])})
        assert added.status_code == 201, added.text
        everything = "".join(run.get(p).text for p in ("/api/streams", "/metrics", "/healthz"))
        assert "hunter2" not in everything and "admin" not in everything
        assert "rtsp://***@127.0.0.1:1/cam" in run.get("/api/streams").text
        assert run.request("DELETE", "/api/streams/cam").status_code == 200


def _mjpeg_frames(url: str, count: int) -> list[np.ndarray]:
    """The first `count` frames of a multipart/x-mixed-replace stream."""
    frames = []
    with requests.get(url, stream=True, timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        data = b""
        for chunk in answer.iter_content(4096):
            data += chunk
            while (start := data.find(b"\xff\xd8")) >= 0 and (end := data.find(b"\xff\xd9", start)) >= 0:
                frames.append(cv2.imdecode(np.frombuffer(data[start : end + 2], np.uint8), cv2.IMREAD_COLOR))
                data = data[end + 2 :]
                if len(frames) == count:
                    return frames
    return frames


def _raw(url: str, method: str, path: str) -> requests.Response:
    """A request whose path goes out as written (a client library would resolve its '..')."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    answer = requests.Response()
    answer.status_code = int(head.split()[1])
    answer._content = body
    answer.headers.update(dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:]))
    return answer


def test_a_taken_port_is_one_line() -> None:
    from emoedge.errors import EmoedgeError
    from emoedge.service.server import HttpService
    from emoedge.service.settings import Address

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmoedgeError, match=rf"--http 127.0.0.1:{port}: cannot listen: the port is taken"):
            HttpService(Address("127.0.0.1", port, None))
