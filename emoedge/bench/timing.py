"""Timing calls fairly: interleaved rounds, percentiles, and the per-person way the shared context is compared with."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

MIN_CALLS, MAX_CALLS = 7, 50  # timed rounds


def interleaved(points: dict[Hashable, Callable[[], Any]], budget: float) -> dict[Hashable, list[float]]:
    """Per-call wall times (ms) of every point, measured in rounds that time each point once, after two warm-ups.

    Why rounds: the cores may be shared with other jobs whose load comes and goes; interleaving spreads it over all
    points alike, so the ratios between paths stay fair even when absolute times drift. Each timed call follows an
    untimed one of the same point, so it finds that model's weights in the caches as a running pipeline would.
    """
    for call in points.values():
        call()
        call()
    times: dict[Hashable, list[float]] = {key: [] for key in points}
    start = time.perf_counter()
    for done in range(MAX_CALLS):
        if done >= MIN_CALLS and time.perf_counter() - start >= budget:
            break
        for key, call in points.items():
            call()
            t0 = time.perf_counter()
            call()
            times[key].append(1000 * (time.perf_counter() - t0))
    return times


def summarise(times: list[float], persons: int) -> dict[str, float]:
    """Percentiles (ms) and throughput at the median latency (a mean would carry other jobs' interference)."""
    p50, p90, p99 = (float(np.percentile(times, q)) for q in (50, 90, 99))
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "calls": len(times), "frames_per_s": 1000 / p50,
            "persons_per_s": 1000 * persons / p50}  # fmt: skip


def per_person(backend: Any, image: np.ndarray, body: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The popular reimplementation's way: one call per person, each with its own copy of the frame."""
    return [backend.infer(image.copy(), body[i : i + 1]) for i in range(len(body))]
