"""The offline main job: write the sample dataset, train the sample recipe, evaluate it on the test split.

Why it resumes: each stage is skipped when its output already exists (a run is continued with --resume), so an
interrupted demo picks up where it stopped instead of starting over.
"""

from __future__ import annotations

from pathlib import Path

from emoedge.cli import RECIPES_DIR
from emoedge.config import load_recipe
from emoedge.training.evaluate import evaluate_checkpoint
from emoedge.training.report import table1_markdown
from emoedge.training.trainer import BEST, train


def run_demo(workdir: Path, *, epochs: int | None = None) -> Path:
    """Run sample → train → eval in `workdir`; returns the report folder."""
    from emoedge.data.sample import write_sample

    data, run, report = workdir / "data", workdir / "run", workdir / "report"
    if not (data / "Annotations" / "Annotations.mat").exists():
        print(f"[1/3] writing the sample dataset to {data}")
        write_sample(data)
    else:
        print(f"[1/3] sample dataset already in {data}")
    overrides = [f"optim.epochs={epochs}"] if epochs else []
    recipe = load_recipe(RECIPES_DIR / "sample.yaml", overrides)
    print(f"[2/3] training recipe '{recipe.name}' into {run}")
    train(recipe, run, data_root=data, resume=True)
    print(f"[3/3] evaluating {run / BEST} on the test split")
    result, card, _ = evaluate_checkpoint(run / BEST, data, split="test", out_dir=report, workers=recipe.data.workers)
    print(table1_markdown(result.aps, result.m_ap, name=card.name))
    print(f"test mAP {100 * result.m_ap:.2f} — report, plots and JSON in {report}")
    return report
