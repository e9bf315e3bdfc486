"""Real-time runtime: video sources, person detection and tracking, per-frame inference, rendering and sinks."""
