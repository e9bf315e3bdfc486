"""The evaluation report (SPEC §6): the paper's Table 1 with our column, results.json and the plots.

Why figures are drawn through matplotlib's object API on an Agg canvas rather than pyplot: nothing is decided at
import time and no global backend is switched under a caller that may have its own; every file is written
atomically, so an interrupted evaluation never leaves a half-written report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.categories import BRANCHES, CATEGORIES, NUM_CATEGORIES, VAD_NAMES
from emoedge.fileio import atomic_write, atomic_write_text

# Paper Table 1 ("Performances on EMOTIC Dataset"), AP in percent, columns [7], [10], [8], ours — as printed.
_TABLE1_COLUMNS = ("Kosti et al. [7]", "Zhang et al. [10]", "Lee et al. [8]", "Vo & Lee [paper]")
_TABLE1_ROWS: dict[str, tuple[float, float, float, float]] = {
    "Affection": (27.85, 46.89, 19.90, 40.61),
    "Anger": (9.49, 10.87, 11.5, 27.32),
    "Annoyance": (14.06, 11.23, 16.4, 22.9),
    "Anticipation": (58.64, 62.64, 53.05, 57.59),
    "Aversion": (7.48, 5.93, 16.2, 9.29),
    "Confidence": (78.35, 72.49, 32.34, 79.14),
    "Disapproval": (14.97, 11.28, 16.04, 20.50),
    "Disconnection": (21.32, 26.91, 22.80, 28.40),
    "Disquietment": (16.89, 16.94, 17.19, 20.39),
    "Doubt/Confusion": (29.63, 18.68, 28.98, 21.03),
    "Embarrassment": (3.18, 1.94, 15.68, 2.96),
    "Engagement": (87.53, 88.56, 46.58, 87.88),
    "Esteem": (17.73, 13.33, 19.26, 17.54),
    "Excitement": (77.16, 71.89, 35.26, 72.19),
    "Fatigue": (9.70, 13.26, 13.04, 18.16),
    "Fear": (14.14, 4.21, 10.41, 10.04),
    "Happiness": (58.26, 73.26, 49.36, 75.08),
    "Pain": (8.94, 6.52, 10.36, 12.19),
    "Peace": (21.56, 32.85, 16.72, 28.08),
    "Pleasure": (45.46, 57.46, 19.47, 49.59),
    "Sadness": (19.66, 25.42, 11.45, 38.50),
    "Sensitivity": (9.28, 5.99, 10.34, 15.68),
    "Suffering": (18.84, 23.39, 11.68, 40.95),
    "Surprise": (18.81, 9.02, 10.92, 12.02),
    "Sympathy": (14.71, 17.53, 17.125, 17.46),
    "Yearning": (8.34, 10.55, 9.79, 9.79),
    "mAP": (27.38, 28.42, 20.84, 32.13),
}
PAPER_TABLE1: dict[str, dict[str, float]] = {
    column: {row: values[j] for row, values in _TABLE1_ROWS.items()} for j, column in enumerate(_TABLE1_COLUMNS)
}
BRANCH_LABELS = {"body": "body", "place": "place", "scene": "scene gist"}
DASH = "–"


def _percent(value: float) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{100.0 * value:.2f}"


def _reference(value: float) -> str:
    """A paper value as printed, with at least two decimals (17.125 stays 17.125, 22.9 becomes 22.90)."""
    text = f"{value:.2f}"
    return text if float(text) == value else f"{value:g}"


def table1_markdown(aps: np.ndarray, m_ap: float, *, name: str = "emoedge", references: bool = True) -> str:
    """The paper's Table 1 layout: a row per category (official order) and an mAP row; AP in percent.

    `aps` (26) and `m_ap` are fractions in 0..1, as returned by `metrics`; NaN is shown as "–".
    """
    aps = np.asarray(aps, dtype=np.float64).reshape(-1)
    if aps.shape != (NUM_CATEGORIES,):
        raise ValueError(f"expected {NUM_CATEGORIES} APs, got {aps.shape}")
    columns = [*(_TABLE1_COLUMNS if references else ()), name]
    lines = [
        "| Category | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    ours = [*aps.tolist(), float(m_ap)]
    for label, value in zip([*CATEGORIES, "mAP"], ours):
        cells = [_reference(PAPER_TABLE1[c][label]) for c in _TABLE1_COLUMNS] if references else []
        cells.append(_percent(value))
        shown = f"**{label}**" if label == "mAP" else label
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy to Python, NaN/inf to null, paths and other objects to strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _per_category(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape != (NUM_CATEGORIES,):
        raise ValueError(f"{name}: expected {NUM_CATEGORIES} per-category values, got shape {values.shape}")
    return values


@dataclass(frozen=True)
class EvalReport:
    """The numbers of one evaluation and what they are of; per-category arrays in the official category order.

    `weights` is [N, len(branches)] (modality weights per person, columns in the order of `branches`) or None;
    `extra` is written as is into results.json (e.g. the checkpoint and the number of persons). Shapes are checked
    and arrays made float64 here, so that a report that exists can be written.
    """

    aps: np.ndarray
    m_ap: float
    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    vad_mae: np.ndarray | None
    weights: np.ndarray | None
    branches: tuple[str, ...]
    split: str
    model_name: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("aps", "thresholds", "precision", "recall"):
            object.__setattr__(self, name, _per_category(name, getattr(self, name)))
        object.__setattr__(self, "m_ap", float(self.m_ap))
        branches = tuple(self.branches)
        unknown = [b for b in branches if b not in BRANCHES]
        if unknown:
            raise ValueError(f"EvalReport branches: unknown {unknown}, expected a subset of {list(BRANCHES)}")
        object.__setattr__(self, "branches", branches)
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.ndim != 2 or weights.shape[1] != len(branches):
                raise ValueError(
                    f"EvalReport weights: expected [N, {len(branches)}] for {list(branches)}, got {weights.shape}"
                )
            object.__setattr__(self, "weights", weights)


def _results(r: EvalReport) -> dict[str, Any]:
    categories = {
        c: {"ap": r.aps[i], "threshold": r.thresholds[i], "precision": r.precision[i], "recall": r.recall[i]}
        for i, c in enumerate(CATEGORIES)
    }
    modality = None
    if r.weights is not None:
        w = r.weights
        modality = {
            "persons": int(w.shape[0]),
            "mean": {b: float(w[:, k].mean()) if len(w) else None for k, b in enumerate(r.branches)},
            "std": {b: float(w[:, k].std()) if len(w) else None for k, b in enumerate(r.branches)},
        }
    vad_mae = None if r.vad_mae is None else dict(zip(VAD_NAMES, np.asarray(r.vad_mae, dtype=float).tolist()))
    return _jsonable(
        {
            "model": r.model_name,
            "split": r.split,
            "branches": list(r.branches),
            "mAP": r.m_ap,
            "categories": categories,
            "vad_mae": vad_mae,
            "modality_weights": modality,
            "reference_mAP": {"paper": PAPER_TABLE1["Vo & Lee [paper]"]["mAP"] / 100.0},
            "extra": r.extra,
            "units": "AP, mAP, precision, recall, thresholds and weights in 0..1; VAD MAE on the 1-10 scale",
        }
    )


def _save_png(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def plot_ap_per_category(aps: np.ndarray, m_ap: float, path: Path, *, title: str = "") -> Path:
    """Horizontal bars of AP per category (official order, top to bottom), the mAP line and the paper's values."""
    from matplotlib.figure import Figure

    aps = _per_category("aps", aps)
    fig = Figure(figsize=(7, 8), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(NUM_CATEGORIES)
    ax.barh(y, np.nan_to_num(100 * aps), color="tab:blue", label="AP")
    paper = [PAPER_TABLE1["Vo & Lee [paper]"][c] for c in CATEGORIES]
    ax.scatter(paper, y, marker="|", s=120, color="black", zorder=3, label="paper (Vo & Lee)")
    if math.isfinite(m_ap):
        ax.axvline(100 * m_ap, color="tab:red", linestyle="--", label=f"mAP {100 * m_ap:.2f}")
    ax.set_yticks(y, [f"{c} (–)" if math.isnan(a) else c for c, a in zip(CATEGORIES, aps)])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("average precision (%)")
    ax.set_title(title or "AP per category")
    ax.legend(loc="lower right", fontsize="small")
    return _save_png(fig, path)


def plot_modality_weights(weights: np.ndarray, branches: Sequence[str], path: Path, *, title: str = "") -> Path:
    """Distribution of the attention weights over a split, one histogram per branch (paper Fig. 4)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 51)
    for k, branch in enumerate(branches):
        column = weights[:, k]
        mean = f", mean {column.mean():.3f}" if len(column) else ""
        ax.hist(column, bins=bins, histtype="step", linewidth=1.8, label=f"{BRANCH_LABELS.get(branch, branch)}{mean}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("modality weight")
    ax.set_ylabel("persons")
    ax.set_title(title or f"modality weights ({len(weights)} persons)")
    ax.legend(fontsize="small")
    return _save_png(fig, path)


def write_report(out_dir: Path, report: EvalReport) -> dict[str, Path]:
    """Write results.json, table1.md, ap_per_category.png and (with weights) modality_weights.png into `out_dir`.

    Returns the paths by key: "results", "table1", "ap_per_category" and "modality_weights".
    """
    out_dir, r = Path(out_dir), report
    results = _results(r)
    paths = {
        "results": atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, allow_nan=False) + "\n"),
    }
    header = (
        f"# {r.model_name}: EMOTIC {r.split} split\n\n"
        f"Average precision per category (%), in the layout of Vo & Lee (2022) Table 1; the first columns are the "
        f"paper's reference results. Branches: {', '.join(BRANCH_LABELS[b] for b in r.branches)}. "
        f"{DASH} : no positive example of that category in this split.\n\n"
    )
    measured = [f"{key}: {r.extra[key]}" for key in ("model", "backend", "precision") if key in r.extra]
    if measured:
        header += "Measured " + "; ".join(measured) + ".\n\n"
    table = table1_markdown(r.aps, r.m_ap, name=r.model_name)
    paths["table1"] = atomic_write_text(out_dir / "table1.md", header + table)
    title = f"{r.model_name} — {r.split}"
    paths["ap_per_category"] = plot_ap_per_category(r.aps, r.m_ap, out_dir / "ap_per_category.png", title=title)
    if r.weights is not None:
        paths["modality_weights"] = plot_modality_weights(
            r.weights,
            r.branches,
            out_dir / "modality_weights.png",
            title=f"{title}: modality weights ({len(r.weights)} persons)",
        )
    return paths
