"""The Table-1 report: the paper's numbers, the Markdown layout, and the files written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from emoedge.categories import CATEGORIES
from emoedge.evaluation.report import PAPER_TABLE1, EvalReport, table1_markdown, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("column", list(PAPER_TABLE1))
def test_paper_columns_average_to_their_printed_map(column: str) -> None:
    # A transcription check: each column of the paper's Table 1 averages to its printed mAP (to rounding).
    values = PAPER_TABLE1[column]
    assert list(values) == [*CATEGORIES, "mAP"]
    assert sum(values[c] for c in CATEGORIES) / 26 == pytest.approx(values["mAP"], abs=0.006)


def test_paper_table_spot_values() -> None:
    assert PAPER_TABLE1["Vo & Lee [paper]"]["mAP"] == 32.13
    assert PAPER_TABLE1["Kosti et al. [7]"]["mAP"] == 27.38
    assert PAPER_TABLE1["Lee et al. [8]"]["Sympathy"] == 17.125
    assert PAPER_TABLE1["Vo & Lee [paper]"]["Annoyance"] == 22.9


def _aps() -> np.ndarray:
    aps = np.linspace(0.05, 0.8, 26)
    aps[0] = 0.4321  # Affection: shown as 43.21
    aps[25] = np.nan  # Yearning: no positive
    return aps


def test_table1_markdown_layout() -> None:
    text = table1_markdown(_aps(), 0.2913, name="mine")
    lines = text.strip().splitlines()
    header, rows = lines[0], lines[2:]
    assert len(rows) == 26 + 1
    assert header.split("|")[-2].strip() == "mine"
    assert all(name in header for name in PAPER_TABLE1)
    assert [r.split("|")[1].strip() for r in rows[:26]] == list(CATEGORIES)
    assert rows[0].endswith("| 43.21 |")
    assert rows[25].endswith("| – |")
    assert "mAP" in rows[26] and "32.13" in rows[26] and rows[26].endswith("| 29.13 |")
    assert "17.125" in rows[24]  # Sympathy, Lee et al.: printed as in the paper
    short = table1_markdown(_aps(), 0.2913, references=False).strip().splitlines()
    assert len(short) == 29 and "32.13" not in "\n".join(short)
    assert short[0] == "| Category | emoedge |"


def _report(**changes) -> EvalReport:
    """A report of made-up numbers: every kind of value (NaN, numpy scalars, paths), overridable per test."""
    values = dict(
        aps=_aps(),
        m_ap=0.2913,
        thresholds=np.full(26, 0.35),
        precision=np.linspace(0.1, 0.6, 26),
        recall=np.where(np.arange(26) == 25, np.nan, 0.5),
        vad_mae=np.array([1.1, 0.9, 1.3]),
        weights=None,
        branches=("body", "place", "scene"),
        split="test",
        model_name="tiny",
    )
    return EvalReport(**{**values, **changes})


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    weights = rng.dirichlet([2.0, 0.5, 3.0], size=300)
    extra = {"checkpoint": tmp_path / "best.pt", "persons": np.int64(300)}
    paths = write_report(tmp_path / "eval", _report(weights=weights, extra=extra))
    assert set(paths) == {"results", "table1", "ap_per_category", "modality_weights"}
    for key in ("ap_per_category", "modality_weights"):
        data = paths[key].read_bytes()
        assert paths[key].suffix == ".png" and len(data) > 1000 and data.startswith(PNG_SIGNATURE)
        from matplotlib.image import imread

        assert imread(paths[key]).ndim == 3  # decodes as an image
    assert not list(paths["results"].parent.glob(".*.tmp"))  # no temporary file left behind

    results = json.loads(paths["results"].read_text())
    assert results["model"] == "tiny" and results["split"] == "test"
    assert results["branches"] == ["body", "place", "scene"]
    assert results["mAP"] == pytest.approx(0.2913)
    assert list(results["categories"]) == list(CATEGORIES)
    assert results["categories"]["Affection"] == {"ap": 0.4321, "threshold": 0.35, "precision": 0.1, "recall": 0.5}
    assert results["categories"]["Yearning"]["ap"] is None and results["categories"]["Yearning"]["recall"] is None
    assert results["vad_mae"] == {"valence": 1.1, "arousal": 0.9, "dominance": 1.3}
    means = results["modality_weights"]["mean"]
    assert list(means) == ["body", "place", "scene"] and math.isclose(sum(means.values()), 1.0)
    assert means["body"] == pytest.approx(weights[:, 0].mean())
    assert results["extra"] == {"checkpoint": str(tmp_path / "best.pt"), "persons": 300}
    # Round trip: what was read writes back to the same text.
    assert json.dumps(results, indent=2, allow_nan=False) + "\n" == paths["results"].read_text()

    table = paths["table1"].read_text()
    assert "tiny" in table and "32.13" in table and "43.21" in table


def test_write_report_without_weights_or_vad(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    paths = write_report(out, _report(vad_mae=None, branches=["body", "scene"], split="val", model_name="concat"))
    assert set(paths) == {"results", "table1", "ap_per_category"}
    assert not (out / "modality_weights.png").exists()
    results = json.loads(paths["results"].read_text())
    assert results["vad_mae"] is None and results["modality_weights"] is None and results["extra"] == {}
    assert results["branches"] == ["body", "scene"] and results["split"] == "val"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"weights": np.full((4, 3), 1 / 3), "branches": ["body", "scene"]}, r"weights: expected \[N, 2\]"),
        ({"branches": ["body", "face"]}, r"branches: unknown \['face'\]"),
        ({"aps": np.zeros(25)}, r"aps: expected 26 per-category values"),
    ],
    ids=["weights-not-matching-branches", "unknown-branch", "short-aps"],
)
def test_report_with_inconsistent_values_is_refused(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        _report(**changes)
