"""`/api/streams`: the JSON of a run's streams, and a request to add one, checked like `--source` on the command line.

A POST body is `{"id": ..., "source": ..., "boxes": ...?}`: the same id rule, source forms and boxes files as a
streams file (`emoedge.runtime.streams`). Videos are not written for streams added here: a client names no path
this machine writes to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoedge import settings
from emoedge.errors import EmoedgeError
from emoedge.runtime.loop import StreamView
from emoedge.runtime.streams import StreamSpec

MAX_BODY = 16 * 1024  # bytes of a request body: a stream's id, source URL and boxes path fit many times over


@dataclass(frozen=True)
class _AddRequest:
    id: str
    source: str
    boxes: Path | None = None


def stream_spec(body: bytes) -> StreamSpec:
    """The stream a POST body asks for; an EmoedgeError naming the field and what was expected otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EmoedgeError(f"request body: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EmoedgeError(f"request body: expected an object {{id, source, boxes?}}, got {type(data).__name__}")
    request = settings.from_dict(_AddRequest, data)
    return StreamSpec(request.id, request.source.strip(), request.boxes)


def view_json(view: StreamView) -> dict[str, Any]:
    """A stream as the API and the live page show it (its source's credentials redacted, as everywhere)."""
    return {
        "id": view.id,
        "source": view.source,
        "state": view.state,
        "live": view.live,
        "frames": view.frames,
        "fps": round(view.fps, 2),
        "persons": view.persons,
        "reconnects": view.reconnects,
        "seconds_since_frame": round(view.since_frame_s, 2),
        "tracks": [
            {
                "id": track.id,
                "box": [round(v, 1) for v in track.box],
                "top": [[name, round(score, 3)] for name, score in track.top],
                "weights": dict(zip(("body", "place", "scene"), (round(w, 3) for w in track.weights))),
            }
            for track in view.tracks
        ],
    }
