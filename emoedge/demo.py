"""The offline main job: sample dataset → train → evaluate → export ONNX → tag a clip, all on the CPU.

Why it resumes: each stage is skipped when its output already exists (training continues with --resume), so an
interrupted demo picks up where it stopped instead of starting over.
"""

from __future__ import annotations

from pathlib import Path

from emoedge import resources
from emoedge.config import load_recipe
from emoedge.training.trainer import BEST, train

DETECTOR_NAMES = ("yolo11n.pt", "yolov8n.pt")  # used instead of the boxes file when present in the demo folder or here


def local_detector(workdir: Path) -> Path | None:
    """Ultralytics YOLO weights the user has put beside the demo (nothing is downloaded)."""
    for folder in (workdir, Path.cwd()):
        for name in DETECTOR_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def run_demo(workdir: Path, *, epochs: int | None = None, detector: Path | str | None = None) -> Path:
    """Run the whole life of the model in `workdir`; returns the annotated video."""
    from emoedge.data.sample import write_sample
    from emoedge.evaluation.evaluate import evaluate_model, write_evaluation
    from emoedge.evaluation.report import table1_markdown
    from emoedge.export.onnx import export_onnx
    from emoedge.runtime.clip import make_demo_clip
    from emoedge.runtime.engine import run
    from emoedge.runtime.weights import detector_weights

    if detector is not None:  # before minutes of training: a detector that cannot be had fails now
        detector = detector_weights(detector)
    overrides = [] if epochs is None else [f"optim.epochs={epochs}"]  # checked now, not after the sample is written
    recipe = load_recipe(resources.find("recipe", "sample"), overrides)
    data, runs, report = workdir / "data", workdir / "run", workdir / "report"
    onnx_path, video, events = workdir / "model.onnx", workdir / "tagged.mp4", workdir / "events.jsonl"
    if not (data / "Annotations" / "Annotations.mat").exists():
        print(f"[1/5] writing the sample dataset to {data}")
        write_sample(data)
    else:
        print(f"[1/5] sample dataset already in {data}")

    print(f"[2/5] training recipe '{recipe.name}' into {runs}")
    train(recipe, runs, data_root=data, resume=True)

    print(f"[3/5] evaluating {runs / BEST} on the test split")
    evaluation = evaluate_model(runs / BEST, data, split="test", workers=recipe.data.workers)
    write_evaluation(report, evaluation)
    result, card = evaluation.scores, evaluation.card
    print(table1_markdown(result.aps, result.m_ap, name=card.name))
    print(f"test mAP {100 * result.m_ap:.2f} — report, plots and JSON in {report}")

    if not onnx_path.exists() or onnx_path.stat().st_mtime < (runs / BEST).stat().st_mtime:
        print(f"[4/5] exporting {onnx_path}")
        print(export_onnx(runs / BEST, onnx_path).parity_line)
    else:
        print(f"[4/5] {onnx_path} is up to date")

    clip, boxes = make_demo_clip(data, workdir / "clip")
    detector = detector or local_detector(workdir)
    persons = f"YOLO detector {detector}" if detector else f"the sample's boxes ({boxes.name})"
    print(f"[5/5] tagging {clip} with {onnx_path.name}, persons from {persons}")
    summary = run(str(clip), onnx_path, detector=detector, boxes=None if detector else boxes, out=video, events=events)
    print(summary.describe())
    print(f"annotated video: {video}\nevents: {events}")
    return video
