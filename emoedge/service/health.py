"""`/healthz` and `/readyz`: whether a run's live streams deliver, and whether it is ready, as an HTTP status and
a JSON body a person can read.

Healthy means every live stream that is still running (a camera, a network stream) has delivered a frame within its
source's read timeout — the time after which the source itself counts it as dropped. Files and image folders are
never stale: they are read as fast as the run goes. Ready means the model is loaded and a first frame tagged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoedge.runtime.engine import Engine

RUNNING = ("connecting", "live", "reconnecting")  # states of a live stream that should be delivering


def health(engine: Engine | None) -> tuple[int, dict[str, Any]]:
    """200 while no running live stream is stale; 503 naming the stale ones (200 "starting" while loading)."""
    if engine is None:
        return 200, {"status": "starting"}
    limit = engine.sources.read_timeout_s
    stale = {
        view.id: {"state": view.state, "seconds_since_frame": round(view.since_frame_s, 1)}
        for view in engine.views()
        if view.live and view.state in RUNNING and view.since_frame_s > limit
    }
    if stale:
        return 503, {"status": "stale", "read_timeout_s": limit, "stale": stale}
    return 200, {"status": "ok"}


def readiness(engine: Engine | None) -> tuple[int, dict[str, Any]]:
    """200 once the model is loaded and a first frame tagged; 503 before."""
    if engine is None:
        return 503, {"status": "loading"}
    if not engine.ready:
        return 503, {"status": "waiting for a first frame"}
    return 200, {"status": "ready"}
