"""The `emoedge` command: argument parsing only; every command calls one library function.

Exit status: 0 success, 2 bad input (one line on stderr), 1 internal error (traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from emoedge import __version__, resources
from emoedge.errors import EmoedgeError



def _cmd_sample(args: argparse.Namespace) -> None:
    from emoedge.data.sample import write_sample

    out = write_sample(Path(args.dir), seed=args.seed)
    print(f"sample dataset written to {out} (official EMOTIC layout: emotic/, Annotations/Annotations.mat, emotic_pre/*.csv)")


def _cmd_data_check(args: argparse.Namespace) -> None:
    from emoedge.data.check import check_dataset, format_report

    report = check_dataset(Path(args.dir), args.format)
    print(format_report(report))
    if report.fatal:
        raise EmoedgeError(f"dataset {args.dir}: {len(report.fatal)} fatal problem(s), first: {report.fatal[0]}")


def _cmd_train(args: argparse.Namespace) -> None:
    from emoedge.config import load_recipe
    from emoedge.training.trainer import train

    recipe = load_recipe(resources.find("recipe", args.recipe), args.overrides)
    out = Path(args.out or Path("runs") / recipe.name)
    result = train(recipe, out, data_root=Path(args.data) if args.data else None, resume=args.resume, progress=not args.quiet)
    if result.epochs_done:
        print(f"best val mAP {100 * result.best_map:.2f} — checkpoints: {result.best} (best), {result.last} (last)")


def _cmd_eval(args: argparse.Namespace) -> None:
    from emoedge.evaluation.report import table1_markdown
    from emoedge.training.evaluate import evaluate_checkpoint

    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval-{args.split}"
    result, card, paths = evaluate_checkpoint(
        Path(args.checkpoint), Path(args.data), split=args.split, out_dir=out, batch_size=args.batch_size,
        workers=args.workers, device=args.device,
    )
    print(table1_markdown(result.aps, result.m_ap, name=card.name, references=not args.no_references))
    if result.vad_mae is not None:
        print("VAD MAE (1–10 scale): " + ", ".join(f"{n} {v:.2f}" for n, v in zip(("valence", "arousal", "dominance"), result.vad_mae)))
    print(f"{args.split} mAP {100 * result.m_ap:.2f} — report: " + ", ".join(str(p) for p in paths.values()))


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from emoedge.training.pretrain import pretrain_backbone

    out = pretrain_backbone(
        Path(args.data), Path(args.out), arch=args.arch, branch=args.branch, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, image_size=args.image_size, weights=args.weights,
        workers=args.workers, seed=args.seed, device=args.device,
    )
    print(f"{args.branch} backbone ({args.arch}) written to {out}; use it with model.weights.{args.branch}={out}")


def _cmd_export_onnx(args: argparse.Namespace) -> None:
    from emoedge.export.onnx import export_onnx

    out = Path(args.output) if args.output else Path(args.checkpoint).with_suffix(".onnx")
    result = export_onnx(Path(args.checkpoint), out, opset=args.opset, simplify=not args.no_simplify)
    print(result.parity_line)
    print(f"ONNX model written to {result.path}")


def _cmd_export_precision(args: argparse.Namespace) -> None:
    from emoedge.export.precision import to_fp16, to_int8

    src = Path(args.onnx)
    kind = "fp16" if args.fp16 else f"int8-{args.int8_target}"
    out = Path(args.output) if args.output else src.with_name(f"{src.stem}-{kind}.onnx")
    data = Path(args.data) if args.data else None
    if args.fp16:
        result = to_fp16(src, out, data=data, progress=True)
    else:
        result = to_int8(
            src, out, calib=Path(args.calib) if args.calib else None, data=data, split=args.split,
            max_images=args.max_images, high_precision=args.high_precision, target=args.int8_target, progress=True,
        )
    print(result.parity_line)
    if result.map_line:
        print(result.map_line)
    print(f"{kind.upper()} ONNX written to {result.path}")


def _cmd_export_engine(args: argparse.Namespace) -> None:
    from emoedge.export.tensorrt import build_engine

    out = Path(args.output) if args.output else Path(args.onnx).with_suffix(".engine")
    result = build_engine(Path(args.onnx), resources.find("target", args.target), out, timing_cache=args.timing_cache)
    print(f"equivalent trtexec command:\n  {result.trtexec}")
    print(result.summary)
    print(f"metadata sidecar: {result.sidecar}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from emoedge.demo import run_demo

    run_demo(Path(args.dir), epochs=args.epochs, detector=Path(args.detector) if args.detector else None)


def _cmd_run(args: argparse.Namespace) -> None:
    from emoedge.runtime.pipeline import run

    summary = run(
        args.source, Path(args.model), detector=args.detector, boxes=Path(args.boxes) if args.boxes else None,
        out=Path(args.out) if args.out else None, events=Path(args.events) if args.events else None, show=args.show,
        every=args.every, smooth=args.smooth, device=args.device, max_frames=args.max_frames, progress=not args.quiet,
    )
    if summary.interrupted:
        raise KeyboardInterrupt  # outputs are complete; the exit status still says the run was stopped


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoedge", description="Context-aware emotion recognition: train, evaluate, deploy.")
    parser.add_argument("--version", action="version", version=f"emoedge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write the sample dataset in EMOTIC's official on-disk layout")
    p.add_argument("dir", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("check", help="validate a dataset: counts per split and category, problems found")
    q.add_argument("dir", help="dataset root (holding emotic/ and Annotations/ or emotic_pre/)")
    q.add_argument("--format", choices=("auto", "mat", "csv"), default="auto")
    q.set_defaults(func=_cmd_data_check)

    p = sub.add_parser("train", help="train a recipe", description="Train a recipe; extra key=value arguments override recipe entries (e.g. optim.epochs=5).")
    p.add_argument("recipe", help="recipe YAML file, or the name of one in train/ (sample, paper, edge, ...)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.epochs=5 model.fusion=concat")
    p.add_argument("--data", help="dataset root (overrides data.root)")
    p.add_argument("--out", help="run folder (default runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint: Table-1 report, JSON, plots")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="dataset root")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--out", help="report folder (default: beside the checkpoint)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-references", action="store_true", help="leave the paper's reference columns out of the table")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("pretrain", help="pretrain a place or scene-gist backbone on an ImageFolder dataset")
    p.add_argument("--branch", choices=("place", "scene"), required=True)
    p.add_argument("--data", required=True, help="ImageFolder root: one sub-folder of images per class")
    p.add_argument("--out", required=True, help="output checkpoint (.pt)")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--weights", help="initial weights: imagenet or a local file")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("export", help="make deployable model files: ONNX, precision variants, TensorRT engines")
    export_sub = p.add_subparsers(dest="export_command", required=True)
    q = export_sub.add_parser("onnx", help="checkpoint → one self-describing ONNX graph (image [1,3,H,W], body [N,3,h,w])")
    q.add_argument("checkpoint")
    q.add_argument("-o", "--output", help="output .onnx (default: the checkpoint path with .onnx)")
    q.add_argument("--opset", type=int, default=18)
    q.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    q.set_defaults(func=_cmd_export_onnx)

    q = export_sub.add_parser("precision", help="FP32 ONNX → FP16 mixed-precision or INT8 Q/DQ ONNX (NVIDIA Model Optimizer)")
    q.add_argument("onnx", help="the FP32 ONNX from `emoedge export onnx`")
    kind = q.add_mutually_exclusive_group(required=True)
    kind.add_argument("--fp16", action="store_true", help="FP16 with AutoCast (sensitive nodes and I/O stay FP32)")
    kind.add_argument("--int8", action="store_true", help="INT8 post-training quantization, calibrated on real images")
    q.add_argument("--int8-target", choices=("tensorrt", "cpu"), default="tensorrt",
                   help="where the INT8 model will run: Q/DQ placed for TensorRT (Model Optimizer) or for ONNX Runtime's CPU")
    q.add_argument("--calib", help="calibration images: a folder of images")
    q.add_argument("--data", help="dataset root: calibration frames from --split, and the test mAP of FP32 vs the new model")
    q.add_argument("--split", default="val", choices=("train", "val", "test"), help="calibration split (default val)")
    q.add_argument("--max-images", type=int, default=256, help="calibration frames at most")
    q.add_argument("--high-precision", choices=("fp32", "fp16"), default="fp32", help="type of what INT8 leaves unquantized")
    q.add_argument("-o", "--output", help="output .onnx (default: <name>-fp16.onnx / <name>-int8-<target>.onnx)")
    q.set_defaults(func=_cmd_export_precision)

    q = export_sub.add_parser("engine", help="ONNX → TensorRT engine for a target (needs TensorRT and an NVIDIA GPU)")
    q.add_argument("onnx", help="emoedge ONNX (the FP16/INT8 one from `export precision` for TensorRT >= 10.12)")
    q.add_argument("--target", required=True, help="target YAML, or the name of one in export/ (desktop-gpu, jetson-orin, ...)")
    q.add_argument("-o", "--output", help="output engine (default: the ONNX path with .engine); a .json sidecar is written beside it")
    q.add_argument("--timing-cache", help="timing cache file (default: the target's)")
    q.set_defaults(func=_cmd_export_engine)

    p = sub.add_parser("run", help="tag every person of a video, stream, webcam or image folder with emotions")
    p.add_argument("--source", required=True, help="webcam index (0), video file, rtsp:// or http(s):// URL, or image folder")
    p.add_argument("--model", required=True, help="checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine)")
    persons = p.add_mutually_exclusive_group()
    persons.add_argument("--detector", help="Ultralytics YOLO weights (.pt, .onnx, .engine); default ./yolo11n.pt")
    persons.add_argument("--boxes", help="per-frame person boxes (JSON or CSV) instead of a detector")
    p.add_argument("--out", help="annotated video (.mp4)")
    p.add_argument("--events", help="JSON Lines event log: one record per person per frame, a summary at the end")
    p.add_argument("--show", action="store_true", help="open a live window")
    p.add_argument("--every", type=int, default=1, help="re-infer each track every K frames (reuse its result between)")
    p.add_argument("--smooth", type=float, default=0.5, help="EMA weight of a track's past scores (0: off)")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="the offline main job: sample → train → evaluate → export ONNX → tag a clip")
    p.add_argument("dir", nargs="?", default="demo", help="working folder (default ./demo)")
    p.add_argument("--epochs", type=int, default=None, help="override the sample recipe's epoch count")
    p.add_argument("--detector", help="YOLO weights to find persons (default: yolo11n.pt if present, else the sample's boxes)")
    p.set_defaults(func=_cmd_demo)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 (warnings API)
    """Warnings for users are one line, without the source line Python adds by default."""
    return f"emoedge: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may follow options (`train R --data D optim.epochs=5`), which argparse cannot place.
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or args.command != "train"]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    warnings.formatwarning = _one_line_warning
    try:
        args.func(args)
    except EmoedgeError as exc:
        print(f"emoedge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emoedge: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
