"""The streams of a multi-camera run, from repeated options or a YAML file: ids, boxes by order, outputs per
stream, and one line for every mistake (credentials never shown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoedge.errors import EmoedgeError
from emoedge.runtime.streams import StreamSpec, load_streams, streams_from_args


def test_options_give_ids_boxes_by_order_and_a_video_per_stream(tmp_path: Path) -> None:
    specs = streams_from_args(["a.mp4", "rtsp://cam/1", "0"], [tmp_path / "a.json"], tmp_path / "out")
    assert [s.id for s in specs] == ["cam0", "cam1", "cam2"]
    assert [s.boxes for s in specs] == [tmp_path / "a.json", None, None]
    assert [s.out for s in specs] == [tmp_path / "out" / f"cam{i}.mp4" for i in range(3)]
    (single,) = streams_from_args(["a.mp4"], [], tmp_path / "tagged.mp4")
    assert single.out == tmp_path / "tagged.mp4" and single.id == "cam0"


def test_a_streams_file_resolves_paths_beside_it(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    path = tmp_path / "sites" / "streams.yaml"
    path.write_text(
        "streams:\n"
        "  - {id: door, source: 'rtsp://user:pw@10.0.0.5/s1', out: videos/door.mp4}\n"
        "  - {id: hall-2, source: clip.mp4, boxes: /data/hall.json}\n"
    )
    door, hall = load_streams(path)
    assert (door.id, door.source, door.out, door.boxes) == ("door", "rtsp://user:pw@10.0.0.5/s1",
                                                            tmp_path / "sites" / "videos" / "door.mp4", None)  # fmt: skip
    assert (hall.boxes, hall.out) == (Path("/data/hall.json"), None)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("streams: []\n", "no stream given"),
        ("streams:\n  - {id: 'a b', source: x}\n", "stream id 'a b': expected 1-64 letters"),
        ("streams:\n  - {id: a, source: x}\n  - {id: a, source: y}\n", "stream id 'a' appears twice"),
        ("streams:\n  - {id: a, source: x, out: v.mp4}\n  - {id: b, source: y, out: v.mp4}\n", "same video"),
        ("streams:\n  - {id: a, sorce: 'rtsp://u:secret@h/s'}\n", "sorce"),
        ("streams:\n  - {id: a, source: x}\n  bad: [\n", "not valid YAML"),
        ("cameras: []\n", "cameras"),
    ],
)
def test_bad_streams_files_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(EmoedgeError, match=r"streams file .*s\.yaml: ") as caught:
        load_streams(path)
    assert needle in str(caught.value) and "secret" not in str(caught.value)


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(EmoedgeError, match=r"--boxes given 2 times for 1 source"):
        streams_from_args(["a.mp4"], [tmp_path / "a.json", tmp_path / "b.json"], None)
    with pytest.raises(EmoedgeError, match=r"with 2 sources, expected a folder"):
        streams_from_args(["a.mp4", "b.mp4"], [], tmp_path / "x.mp4")
    with pytest.raises(EmoedgeError, match="empty source"):
        StreamSpec("a", " ")
    with pytest.raises(EmoedgeError, match="file not found"):
        load_streams(tmp_path / "none.yaml")
