"""One explanation drawn as the paper's Figure 1 lays it out: the image with the person's box, where each branch
looked (the body crop, and the whole image for place and scene gist), the modality weights, and the top categories
against their thresholds (with the ground truth when it is known).

Why matplotlib (Agg): the figure mixes images, colour maps, bars and text at sizes that must stay legible; the
backend renders without a display, and the file is written atomically like every other output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emoedge.categories import BRANCHES
from emoedge.explain.cam import Explanation
from emoedge.fileio import atomic_write, output_file

TITLES = {"body": "body: where it looked", "place": "place", "scene": "scene gist"}
TOP = 6  # categories listed
HEAT = "inferno"  # the heat maps' colour map (perceptual: brighter is more)
ABOVE, BELOW = "#dd8452", "#b0b0b0"  # a category's bar at or above its threshold, and below
DPI = 110


def draw_explanation(
    pixels: np.ndarray, explanation: Explanation, out: Path, *, truth: list[str] | None = None, source: str = ""
) -> Path:
    """Write the figure of `explanation` for the RGB image `pixels` to `out` (PNG); `truth`: the annotated
    categories, marked in the list; `source`: the image's name, for the title."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    out = output_file(out, "explanation image")
    figure = explanation_figure(pixels, explanation, truth=truth, source=source)

    def save(tmp: Path) -> None:
        figure.savefig(tmp, format="png")

    try:
        return atomic_write(out, save)
    finally:
        plt.close(figure)


def explanation_figure(
    pixels: np.ndarray, explanation: Explanation, *, truth: list[str] | None = None, source: str = ""
) -> Any:
    """The matplotlib figure `draw_explanation` writes, with its legends: a colour bar for the heat maps, the
    weights' scale, and what the category bars' colours and ticks mean."""
    from matplotlib import pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    e = explanation
    branches = [b for b in BRANCHES if b in e.maps]
    figure = plt.figure(figsize=(3.2 * (1 + len(branches)) + 0.8, 6.4), dpi=DPI, layout="constrained")
    grid = figure.add_gridspec(2, 1 + len(branches), height_ratios=(3, 2))
    _image_with_box(figure.add_subplot(grid[0, 0]), pixels, e.box)
    maps = []
    for column, branch in enumerate(branches, start=1):
        axes = figure.add_subplot(grid[0, column])
        x1, y1, x2, y2 = e.box
        under = pixels[y1:y2, x1:x2] if branch == "body" else pixels
        _heat(axes, under, e.maps[branch], f"{TITLES[branch]} ({e.weights[branch]:.2f})")
        maps.append(axes)
    scale = figure.colorbar(ScalarMappable(Normalize(0, 1), HEAT), ax=maps, shrink=0.8, pad=0.02)
    scale.set_label("Grad-CAM, relative to each map's peak", fontsize=9)
    _weights(figure.add_subplot(grid[1, 0]), e)
    _categories(figure.add_subplot(grid[1, 1:]), e, set(truth or ()))
    explained = f"explained: {e.category} ({e.scores[e.category]:.2f})"
    figure.suptitle(f"{source}: {explained}" if source else explained, fontsize=13)
    return figure


def _image_with_box(axes: Any, pixels: np.ndarray, box: tuple[int, int, int, int]) -> None:
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = box
    axes.imshow(pixels)
    axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="#00ff66", linewidth=2.5))
    axes.set_title("image and person", fontsize=11)
    axes.axis("off")


def _heat(axes: Any, under: np.ndarray, heat: np.ndarray, title: str) -> None:
    """`heat` (any size) stretched over `under`, half transparent, in a perceptual colour map."""
    height, width = under.shape[:2]
    axes.imshow(under)
    peak = float(heat.max())
    if peak > 0:
        axes.imshow(heat / peak, cmap=HEAT, alpha=0.55, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    axes.set_title(title, fontsize=11)
    axes.axis("off")


def _weights(axes: Any, e: Explanation) -> None:
    names = list(BRANCHES)
    values = [e.weights[b] for b in names]
    axes.barh(names[::-1], values[::-1], color=["#4c72b0", "#55a868", "#c44e52"][::-1])
    axes.set_xlim(0, 1)
    axes.set_title("modality weights", fontsize=11)
    axes.set_xlabel("attention weight (the three sum to 1)", fontsize=9)
    for y, value in enumerate(values[::-1]):
        axes.text(min(value + 0.02, 0.85), y, f"{value:.2f}", va="center", fontsize=10)
    axes.tick_params(labelsize=10)


def _categories(axes: Any, e: Explanation, truth: set[str]) -> None:
    """The top categories' scores as bars, each threshold as a tick; above threshold in colour, truth starred."""
    names = e.top(TOP)[::-1]
    scores = [e.scores[n] for n in names]
    colors = [ABOVE if e.scores[n] >= e.thresholds[n] else BELOW for n in names]
    axes.barh(range(len(names)), scores, color=colors)
    axes.scatter([e.thresholds[n] for n in names], range(len(names)), marker="|", s=300, color="black", zorder=3)
    axes.set_yticks(range(len(names)), [f"{n} *" if n in truth else n for n in names], fontsize=10)
    axes.set_xlim(0, 1)
    axes.set_title("top categories", fontsize=11)
    axes.set_xlabel("score   (| threshold" + (", * annotated)" if truth else ")"), fontsize=10)
    axes.tick_params(axis="x", labelsize=10)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=ABOVE, label="at or above its threshold"), Patch(color=BELOW, label="below"),
               Line2D([], [], color="black", marker="|", linestyle="", markersize=12, label="threshold")]  # fmt: skip
    axes.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.85)
