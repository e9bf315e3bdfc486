"""Detector weights as Ultralytics users expect: found on disk, official names and URLs fetched by Ultralytics' own
downloader when the host answers; offline, with --no-download, or for exported formats, one line before torch loads.

The download itself runs against a real HTTP server on 127.0.0.1 serving a YOLO file built from its YAML (the
official release host cannot be reached here); "offline" is a proxy address where nothing listens.
"""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error  # type: ignore[import-not-found]
from ports import free_port  # type: ignore[import-not-found]

from emoedge.errors import EmoedgeError
from emoedge.runtime.weights import detector_weights, reachable

PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy")


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment of a machine whose only way out is a proxy that is down."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    proxy = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    return proxy


@pytest.fixture
def listening_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A proxy address that accepts connections (the probe's question), so the download step is reached."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.getsockname()[1]}")
        yield


@pytest.fixture(scope="module")
def yolo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Ultralytics weights file: YOLO11n built from its YAML (untrained), saved as .pt."""
    from emoedge.runtime.yolo import import_ultralytics

    try:
        ultralytics = import_ultralytics()
    except EmoedgeError as exc:
        pytest.skip(str(exc))
    path = tmp_path_factory.mktemp("served") / "yolo11n.pt"
    ultralytics.YOLO("yolo11n.yaml").save(path)
    return path


@pytest.fixture
def http_server(yolo_file: Path) -> Iterator[str]:
    """http://127.0.0.1:PORT serving the folder of `yolo_file`; stopped after the test."""
    handler = functools.partial(QuietHandler, directory=str(yolo_file.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_files_on_disk_and_architecture_files_are_used_as_given(tmp_path: Path) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"x")
    assert detector_weights(weights, download=False) == weights
    assert detector_weights("yolo11n.yaml", download=False) == Path("yolo11n.yaml")
    for folder in ("yolo11n_openvino_model", "yolo11n_ncnn_model"):  # what Ultralytics' exporter writes
        (tmp_path / folder).mkdir()
        assert detector_weights(tmp_path / folder, download=False) == tmp_path / folder


@pytest.mark.parametrize(
    ("weights", "download", "needle"),
    [
        ("{tmp}/yolo11n.pt", True, "a path, so nothing is downloaded"),
        ("yolo11n.pt", False, "downloads are off (--no-download)"),
        ("{tmp}/yolo11n.onnx", True, "yolo export model=yolo11n.pt format=onnx"),
        ("yolo11s.engine", True, "yolo export model=yolo11s.pt format=engine"),
        ("weights.bin", True, "expected Ultralytics YOLO weights (.pt, .onnx, .engine) or an exported folder"),
        ("{tmp}/yolo11n_openvino_model", True, "yolo export model=yolo11n.pt format=openvino"),
    ],
)
def test_missing_or_foreign_weights_are_one_line(tmp_path: Path, weights: str, download: bool, needle: str) -> None:
    with pytest.raises(EmoedgeError, match="detector ") as caught:
        detector_weights(weights.format(tmp=tmp_path), download=download)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_offline_is_one_line_naming_the_host(offline: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EmoedgeError, match=r"yolo11n\.pt is not on disk and github\.com does not answer"):
        detector_weights(None)
    assert not (tmp_path / "yolo11n.pt").exists()


def test_the_probe_answers_only_where_something_listens(no_proxy: None) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachable("127.0.0.1", server.getsockname()[1])
    assert not reachable("127.0.0.1", free_port())


def test_a_url_is_fetched_by_ultralytics_downloader_into_the_working_folder(
    http_server: str, yolo_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_proxy: None
) -> None:
    monkeypatch.chdir(tmp_path)
    got = detector_weights(f"{http_server}/yolo11n.pt")
    assert got.resolve() == tmp_path / "yolo11n.pt"
    assert got.read_bytes() == yolo_file.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["yolo11n.pt"]  # no partial file left beside it
    # The second time the file is on disk: nothing is fetched (the server may be gone).
    assert detector_weights(f"http://127.0.0.1:{free_port()}/yolo11n.pt").resolve() == tmp_path / "yolo11n.pt"


def test_a_url_that_is_not_there_is_one_line_without_credentials(
    http_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_proxy: None
) -> None:
    monkeypatch.chdir(tmp_path)
    url = http_server.replace("http://", "http://user:s3cret@") + "/missing.pt?token=abc"
    with pytest.raises(EmoedgeError, match="download failed") as caught:
        detector_weights(url)
    assert "s3cret" not in str(caught.value) and "token" not in str(caught.value)
    with pytest.raises(EmoedgeError, match="does not answer") as caught:
        detector_weights(f"http://user:s3cret@127.0.0.1:{free_port()}/yolo11n.pt")
    assert "s3cret" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_bare_name_is_not_sent_to_the_release_host(
    listening_proxy: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yolo_file: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EmoedgeError, match="not an Ultralytics release asset"):
        detector_weights("yolo11n-typo.pt")


ORDER = """
import sys
from emoedge.cli import main
code = main(sys.argv[1:])
print("TORCH", "torch" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ((), "detector yolo11n.pt is not on disk and github.com does not answer"),
        (("--no-download",), "downloads are off"),
    ],
)
def test_run_without_weights_stops_before_torch_and_the_model(
    offline: str, tmp_path: Path, flags: tuple[str, ...], needle: str
) -> None:
    """The detector is settled first: an unreadable model file is never opened, torch never imported."""
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    args = ("run", "--source", str(tmp_path), "--model", str(tmp_path / "model.onnx"), *flags)
    proc = subprocess.run(
        [sys.executable, "-c", ORDER, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "TORCH False" in proc.stderr.splitlines(), proc.stderr
    proc.stderr = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("TORCH"))
    assert_one_line_error(proc, needle, "--boxes FILE")
