"""The Triton backend without a server: URLs it refuses and a server that is not there are one line each.

Against a real server (emoedge serve) it is tested in tests/serve, in the serving library set.
"""

from __future__ import annotations

import time

import pytest
from cli_helpers import assert_one_line_error, run_cli  # type: ignore[import-not-found]
from ports import free_port  # type: ignore[import-not-found]

from emoedge.backends import load_model
from emoedge.bench.clip import write_boxes_json, write_clip
from emoedge.errors import EmoedgeError

pytest.importorskip("tritonclient", reason="the `triton` extra is not installed")


@pytest.mark.parametrize(
    ("url", "message"),
    [("grpc://127.0.0.1/emo", "expected grpc://HOST:PORT/NAME"), ("grpc://127.0.0.1:8001", "expected grpc://"),
     ("http://user:secret@127.0.0.1:8000/emo", "no user:pass@"), ("grpc://127.0.0.1:8001/../x", "expected grpc://")],
)  # fmt: skip
def test_malformed_urls_are_one_line(url, message):
    with pytest.raises(EmoedgeError, match=message):
        load_model(url)


def test_device_and_precision_belong_to_the_server():
    with pytest.raises(EmoedgeError, match="set on the server"):
        load_model(f"grpc://127.0.0.1:{free_port()}/emo", device="cuda")


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_a_server_not_there_is_one_line_quickly(scheme):
    start = time.monotonic()
    with pytest.raises(EmoedgeError, match=rf"model {scheme}://127.0.0.1:\d+/emo: Triton server not reachable"):
        load_model(f"{scheme}://127.0.0.1:{free_port()}/emo")
    assert time.monotonic() - start < 30  # refused at once, not after a long retry


def test_a_file_backend_refuses_a_url_and_the_cli_names_the_server(tmp_path):
    with pytest.raises(EmoedgeError, match="served by Triton"):
        load_model("grpc://127.0.0.1:8001/emo", backend="onnxruntime")
    boxes = write_boxes_json(tmp_path / "boxes.json", write_clip(tmp_path / "clip.mp4", frames=3, persons=1))
    url = f"grpc://127.0.0.1:{free_port()}/emo"
    proc = run_cli("run", "--source", str(tmp_path / "clip.mp4"), "--model", url, "--boxes", str(boxes))
    assert_one_line_error(proc, url, "Triton server not reachable")
