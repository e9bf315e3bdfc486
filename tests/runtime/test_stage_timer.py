"""Per-stage latency of a run (emoedge.runtime.summary.Timer): percentiles over the recent times, and the p90 of a
stage's first times kept apart, so a run that sets itself up inside its first frames shows it (issue 28's start-up
figure: the first 10 frames against the steady p50)."""

from __future__ import annotations

import pytest

from emoedge.runtime.summary import FIRST, Timer


def test_a_slow_start_shows_in_the_first_p90_and_not_in_the_steady_p50():
    timer = Timer()
    for seconds in [0.5] * 3 + [0.01] * (FIRST - 3) + [0.01] * 200:  # three slow frames at start, then steady
        timer.record("engine", seconds)
    stats = timer.stats()["engine"]
    assert stats.count == FIRST + 200
    assert stats.p50_ms == pytest.approx(10.0)
    assert stats.first_p90_ms > 100.0  # three of the first ten took 500 ms


def test_a_stage_that_ran_fewer_times_than_first_takes_the_p90_of_those():
    timer = Timer()
    for seconds in (0.002, 0.004):
        timer.record("preprocess", seconds)
    stats = timer.stats()
    assert set(stats) == {"preprocess"}  # stages that never ran are left out
    assert stats["preprocess"].first_p90_ms == pytest.approx(3.8)
