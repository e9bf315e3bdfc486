"""Persons validation; per-track reuse (`every`) and EMA smoothing, with tracks forgotten when they leave."""

from __future__ import annotations

import numpy as np
import pytest

from emoedge.runtime.persons import Persons
from emoedge.runtime.smoothing import ResultCache, ScoreSmoother


def _persons(ids: list[int]) -> Persons:
    return Persons.from_arrays([[0, 0, 10, 10]] * len(ids), ids)


def _outputs(values: list[float]) -> dict[str, np.ndarray]:
    """Engine outputs where person k's scores are all values[k]."""
    n = len(values)
    scores = np.repeat(np.asarray(values, np.float32)[:, None], 26, axis=1)
    return {
        "scores": scores,
        "modality_weights": np.full((n, 3), 1 / 3, np.float32),
        "vad": np.full((n, 3), 5.0, np.float32),
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"boxes": np.zeros((2, 3), np.float32)}, "Persons.boxes: shape"),
        ({"ids": np.zeros(3, np.int64)}, "Persons.ids: shape"),
        ({"ids": np.array([1, 1], np.int64)}, "not unique"),
        ({"confidences": np.ones(2)}, "Persons.confidences: expected a numpy float32"),
        ({"scores": np.zeros((2, 26), np.float32)}, "come together"),
    ],
)
def test_persons_reject_inconsistent_arrays(kwargs: dict, needle: str) -> None:
    base = {
        "boxes": np.zeros((2, 4), np.float32),
        "ids": np.array([1, 2], np.int64),
        "confidences": np.ones(2, np.float32),
    }
    with pytest.raises(ValueError, match=needle):
        Persons(**{**base, **kwargs})


def test_take_indexes_every_array_alike() -> None:
    persons = _persons([5, 6, 7]).with_outputs(*_outputs([0.1, 0.2, 0.3]).values(), np.array([True, False, True]))
    picked = persons.take(np.array([False, True, True]))
    assert picked.ids.tolist() == [6, 7] and picked.scores[:, 0].tolist() == pytest.approx([0.2, 0.3])
    assert picked.inferred.tolist() == [False, True] and len(persons) == 3


def test_cache_reinfers_every_k_frames_new_tracks_at_once_and_forgets_departed_ones() -> None:
    cache = ResultCache(every=3)
    schedule = [[1], [1], [1, 2], [1, 2], [2], [1, 2]]  # track 1 leaves at frame 4 and comes back at 5
    due_log = []
    for t, ids in enumerate(schedule):
        persons = _persons(ids)
        due = cache.due(persons)
        due_log.append(dict(zip(ids, due.tolist())))
        merged = cache.merge(persons, due, _outputs([float(t)] * int(due.sum())))
        assert merged.inferred.tolist() == due.tolist()
        if t == 3:  # track 1 reuses frame 0's result, track 2 (new at frame 2) frame 2's
            assert merged.scores[:, 0].tolist() == [3.0, 2.0]
    assert due_log == [{1: True}, {1: False}, {1: False, 2: True}, {1: True, 2: False}, {2: False}, {1: True, 2: True}]


def test_smoother_averages_along_each_track_and_holds_reused_results() -> None:
    smoother = ScoreSmoother(0.5)
    steps = [
        ([1, 2], [0.0, 1.0], [True, True]),
        ([1, 2], [1.0, 1.0], [True, False]),
        ([2, 1], [0.0, 1.0], [True, True]),
    ]
    seen = []
    for ids, values, inferred in steps:
        persons = _persons(ids).with_outputs(*_outputs(values).values(), np.array(inferred))
        out = smoother(persons)
        assert out.ids.tolist() == ids and np.allclose(out.modality_weights.sum(1), 1.0)
        seen.append(out.scores[:, 0].tolist())
    assert seen == [[0.0, 1.0], [0.5, 1.0], [0.5, 0.75]]  # track 2: held at 1.0 while reused, then (1 + 0) / 2


def test_smoother_forgets_departed_tracks_and_zero_alpha_is_off() -> None:
    smoother = ScoreSmoother(0.9)
    for ids, value in (([1], 1.0), ([2], 0.0), ([1], 0.0)):
        out = smoother(_persons(ids).with_outputs(*_outputs([value]).values(), np.array([True])))
    assert out.scores[0, 0] == 0.0  # track 1 left at frame 1: its old average is gone
    off = ScoreSmoother(0.0)
    for value in (1.0, 0.25):
        out = off(_persons([1]).with_outputs(*_outputs([value]).values(), np.array([True])))
    assert out.scores[0, 0] == 0.25


def test_empty_frames_pass_through() -> None:
    cache, smoother = ResultCache(2), ScoreSmoother(0.5)
    persons = Persons.empty()
    merged = smoother(cache.merge(persons, cache.due(persons), _outputs([])))
    assert len(merged) == 0 and merged.scores.shape == (0, 26) and merged.vad.shape == (0, 3)
