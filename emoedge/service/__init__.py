"""emoedge as a service: a run watched and steered over HTTP (live page, Prometheus metrics, health, the streams
API) and by systemd (readiness, watchdog). Everything here observes a running `emoedge.runtime.engine.Engine`
through its snapshot (`views`, `beat`, `live_frame`) and steers it through its queued commands (`add`, `remove`):
nothing here blocks the frame loop.
"""
