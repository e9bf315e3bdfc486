"""The `emoedge` command: argument parsing only; every command calls one library function.

One spelling per concept across commands: `-o/--out` for what a command writes, `--data` for a dataset or image
folder, `--device`, `--precision`, `--quiet` (no progress; the results still print), `--…-s` for seconds. A command
that takes a settings object (a recipe, a target, the run or pretraining settings) also takes `key=value` overrides
of it, anywhere on the line, applied after its options. Every `--help` shows defaults, choices and examples. Each
command below is its parser (`_add_*`) followed by what it runs (`_cmd_*`).

Exit status: 0 success, 2 bad input (one line on stderr), 1 internal error (traceback), 130 interrupted (SIGINT or
SIGTERM, at any moment: the outputs are complete, and "emoedge: interrupted" is the last line on stderr). A command
that fails (1 or 2) removes the files and folders it created, unless they hold results (`fileio.keep_outputs`).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from emoedge import __version__, options, resources
from emoedge.devices import COMPILE_HELP, CUDA_GRAPHS, CUDA_GRAPHS_HELP, DEVICE_HELP, PRECISION_HELP, PRECISIONS
from emoedge.errors import EmoedgeError
from emoedge.runtime.redact import redact_url
from emoedge.settings import QUIET_HELP
from emoedge.signals import Signals

Subparsers = argparse._SubParsersAction  # argparse's type of `add_subparsers()`, not exported under another name
SPLITS = ("train", "val", "test")
INTERRUPTED = 130  # the exit status of a stopped command (128 + SIGINT), its outputs complete


# ------------------------------------------------------------------------------------------------- the machinery
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after each help text, examples kept as written.

    A flag's False and an absent value's None are not shown: the help text says what the absence means.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.nargs == 0 or action.default is None or action.default == []:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Every parser of the command: the help formatter above, and usage errors in one line like all others."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"emoedge: error: {redact_url(message)} (see `{self.prog} --help`)\n")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(
    sub: Subparsers, name: str, func: Callable[[argparse.Namespace], int | None] | None, doc: Callable | None = None
) -> argparse.ArgumentParser:
    """A (sub)command running `func`, described by the docstring of `func` (or of `doc`, for a group of commands):
    its first line is the summary (also the description), the lines after the blank one are the examples."""
    summary, _, examples = inspect.getdoc(func or doc).partition("\n\n")  # type: ignore[arg-type]
    p = sub.add_parser(name, help=summary, description=summary, epilog=_examples(*examples.splitlines()))
    if func is not None:
        p.set_defaults(func=func, parser=p)
    return p


def _group(p: argparse.ArgumentParser, dest: str) -> Subparsers:
    return p.add_subparsers(dest=dest, required=True, title="commands", metavar="COMMAND")


def _overrides(p: argparse.ArgumentParser, what: str, example: str) -> None:
    """The key=value list of a command that takes a settings object (`main` collects it from anywhere)."""
    p.add_argument(
        "overrides",
        nargs="*",
        default=[],
        metavar="key=value",
        help=f"override {what}, e.g. {example}; applied after the options, so they win",
    )


def _model(value: str) -> str | Path:
    """A model option: a served model's URL as given (a Path would fold its //), else a file path."""
    from emoedge.backends import is_url

    return value if is_url(value) else Path(value)


def _shipped(kind: resources.Kind) -> str:
    return ", ".join(resources.shipped_names(kind))


# -------------------------------------------------------------------------------------------------- the commands
def _add_sample(sub: Subparsers) -> None:
    p = _command(sub, "sample", _cmd_sample)
    p.add_argument("dir", type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated images and annotations")


def _cmd_sample(args: argparse.Namespace) -> None:
    """write the sample dataset in EMOTIC's official on-disk layout

    emoedge sample data/sample
    emoedge sample data/sample2 --seed 1
    """
    from emoedge.data.sample import write_sample

    out = write_sample(args.dir, seed=args.seed)
    layout = "emotic/, Annotations/Annotations.mat, emotic_pre/*.csv"
    print(f"sample dataset written to {out} (official EMOTIC layout: {layout})")


def _add_data(sub: Subparsers) -> None:
    """dataset tools

    emoedge data check /data/EMOTIC
    """
    group = _group(_command(sub, "data", None, _add_data), "data_command")
    p = _command(group, "check", _cmd_data_check)
    p.add_argument("dir", type=Path, help="dataset root (holding emotic/ and Annotations/ or emotic_pre/)")
    p.add_argument(
        "--format",
        choices=("auto", "mat", "csv"),
        default="auto",
        help="annotations to read: Annotations/Annotations.mat, emotic_pre/*.csv, or whichever exists",
    )


def _cmd_data_check(args: argparse.Namespace) -> None:
    """validate a dataset: counts per split and category, problems found

    emoedge data check /data/EMOTIC
    emoedge data check data/sample --format csv
    """
    from emoedge.data.check import check_dataset, format_report

    report = check_dataset(args.dir, args.format)
    print(format_report(report))
    if report.fatal:
        raise EmoedgeError(f"dataset {args.dir}: {len(report.fatal)} fatal problem(s), first: {report.fatal[0]}")


def _add_train(sub: Subparsers) -> None:
    p = _command(sub, "train", _cmd_train)
    p.add_argument("recipe", help=f"recipe YAML file, or the name of a shipped one ({_shipped('recipe')})")
    _overrides(p, "recipe entries", "optim.epochs=5 model.fusion=concat data.workers=0")
    p.add_argument("--data", type=Path, help="dataset root (default: the recipe's data.root)")
    p.add_argument("-o", "--out", type=Path, help="run folder (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _cmd_train(args: argparse.Namespace) -> None:
    """train a recipe: model, data, loss and optimiser settings in YAML

    emoedge train sample --data data/sample
    emoedge train paper --data /data/EMOTIC -o runs/paper optim.epochs=30 model.fusion=concat
    emoedge train paper --data /data/EMOTIC -o runs/paper --resume
    torchrun --nproc-per-node 4 -m emoedge train paper --data /data/EMOTIC  # DDP, one process per GPU
    """
    from emoedge.config import load_recipe
    from emoedge.training.trainer import train

    recipe = load_recipe(resources.find("recipe", args.recipe), args.overrides)
    out = args.out or Path("runs") / recipe.name
    result = train(recipe, out, data_root=args.data, resume=args.resume, progress=not args.quiet)
    if result.epochs_done:
        print(f"best val mAP {100 * result.best_map:.2f} — checkpoints: {result.best} (best), {result.last} (last)")


def _add_eval(sub: Subparsers) -> None:
    p = _command(sub, "eval", _cmd_eval)
    p.add_argument(
        "model",
        type=_model,
        help="checkpoint (.pt), emoedge ONNX (any precision), TensorRT engine, OpenVINO IR folder or a Triton server's "
        "model (grpc://…)",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--split", default="test", choices=SPLITS, help="split to evaluate")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        help="report folder (default: eval-<split>-<model name> beside the model file, or here)",
    )
    p.add_argument("--workers", type=int, default=2, help="image-decoding processes (0: in this process)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--cuda-graphs", default="auto", choices=CUDA_GRAPHS, help=CUDA_GRAPHS_HELP)
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument("--no-references", action="store_true", help="leave the paper's reference columns out")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _cmd_eval(args: argparse.Namespace) -> None:
    """evaluate any model file on a split: the paper's Table 1, results.json and plots

    emoedge eval runs/sample/best.pt --data data/sample
    emoedge eval model-int8-cpu.onnx --data /data/EMOTIC --device cpu   # the file you deploy, as it runs
    emoedge eval model.engine --data /data/EMOTIC --split val -o reports/engine-val --no-references
    """
    from emoedge.evaluation.evaluate import evaluate_model, write_evaluation
    from emoedge.evaluation.report import table1_markdown
    from emoedge.fileio import output_folder

    if isinstance(args.model, str):  # a served model: its report beside the current folder's other files
        default = Path(f"eval-{args.split}-{args.model.rstrip('/').rsplit('/', 1)[1]}")
    else:
        default = args.model.parent / f"eval-{args.split}-{args.model.stem}"
    out = output_folder(args.out or default, "report folder")
    evaluation = evaluate_model(
        args.model, args.data, split=args.split, device=args.device, precision=args.precision,
        cuda_graphs=args.cuda_graphs, compile=args.compile, workers=args.workers, progress=not args.quiet,
    )  # fmt: skip
    paths = write_evaluation(out, evaluation)
    result, card = evaluation.scores, evaluation.card
    print(f"model: {args.model} ({evaluation.backend})")
    print(table1_markdown(result.aps, result.m_ap, name=card.name, references=not args.no_references))
    if result.vad_mae is not None:
        vad = zip(("valence", "arousal", "dominance"), result.vad_mae)
        print("VAD MAE (1–10 scale): " + ", ".join(f"{name} {value:.2f}" for name, value in vad))
    print(f"{args.split} mAP {100 * result.m_ap:.2f} — report: " + ", ".join(str(p) for p in paths.values()))


def _add_explain(sub: Subparsers) -> None:
    p = _command(sub, "explain", _cmd_explain)
    p.add_argument("model", type=Path, help="training checkpoint (.pt): Grad-CAM needs its gradients")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--image", type=Path, help="an image file (with --box)")
    where.add_argument("--data", type=Path, help="dataset root (with --split and --index): shows the annotation too")
    p.add_argument("--box", help="the person's box in --image: x1,y1,x2,y2 pixels")
    p.add_argument("--split", default="test", choices=SPLITS, help="split of --data")
    p.add_argument("--index", type=int, help="the person's 0-based place in the split's annotations")
    p.add_argument("--category", help="category to explain (default: the person's top-scoring one)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output image (.png)")


def _cmd_explain(args: argparse.Namespace) -> None:
    """explain one person as the paper's Figure 1: where each branch looked, the modality weights, the scores

    emoedge explain runs/sample/best.pt --image street.jpg --box 120,40,260,400 -o why.png
    emoedge explain runs/sample/best.pt --data data/sample --split test --index 3 -o why-3.png   # with truth
    emoedge explain best.pt --image street.jpg --box 120,40,260,400 --category Happiness -o happy.png
    """
    from emoedge.explain.person import explain_annotated, explain_image, parse_box

    if args.image is not None:
        if args.box is None or args.index is not None:
            args.parser.error("--image needs --box x1,y1,x2,y2 (and takes no --index)")
        out = explain_image(args.model, args.image, parse_box(args.box), args.out, args.category)
    else:
        if args.index is None or args.box is not None:
            args.parser.error("--data needs --index I (and takes no --box)")
        out = explain_annotated(args.model, args.data, args.split, args.index, args.out, args.category)
    print(f"explanation: {out}")


def _add_pretrain(sub: Subparsers) -> None:
    from emoedge.training.settings import PretrainSettings

    p = _command(sub, "pretrain", _cmd_pretrain)
    _overrides(p, f"pretraining settings ({options.keys(PretrainSettings)})", "lr=0.05 val_fraction=0.2")
    p.add_argument("--data", type=Path, required=True, help="ImageFolder root: one sub-folder of images per class")
    p.add_argument("-o", "--out", type=Path, required=True, help="output backbone checkpoint (.pt)")
    options.add_options(p, PretrainSettings)


def _cmd_pretrain(args: argparse.Namespace) -> None:
    """pretrain a place or scene-gist backbone on an ImageFolder dataset

    emoedge pretrain --branch place --data /data/places365 -o weights/place_resnet50.pt
    emoedge pretrain --branch scene --data /data/stock-emotion -o weights/scene.pt --weights imagenet epochs=30
    emoedge train paper --data /data/EMOTIC model.weights.scene=weights/scene.pt  # then train with it
    """
    from emoedge.training.pretrain import pretrain_backbone
    from emoedge.training.settings import PretrainSettings

    s = options.from_args(PretrainSettings, args, args.overrides, "pretrain settings")
    out = pretrain_backbone(args.data, args.out, s)
    print(f"{s.branch} backbone ({s.arch}) written to {out}; use it with model.weights.{s.branch}={out}")


def _add_export(sub: Subparsers) -> None:
    """make deployable model files: ONNX, FP16/INT8 ONNX, TensorRT engines, OpenVINO IR folders, Triton repositories

    emoedge export onnx runs/sample/best.pt -o model.onnx
    emoedge export precision model.onnx --fp16 -o model-fp16.onnx
    emoedge export engine model-fp16.onnx --target desktop-gpu -o model.engine
    emoedge export openvino model.onnx --int8 --calib frames/ -o model-openvino-int8
    emoedge export triton model.engine -o model_repository --name emoedge
    """
    group = _group(_command(sub, "export", None, _add_export), "export_command")
    _add_export_onnx(group)
    _add_export_precision(group)
    _add_export_engine(group)
    _add_export_openvino(group)
    _add_export_triton(group)


def _add_export_onnx(sub: Subparsers) -> None:
    p = _command(sub, "onnx", _cmd_export_onnx)
    p.add_argument("checkpoint", type=Path, help="training checkpoint (.pt) written by `emoedge train`")
    p.add_argument("-o", "--out", type=Path, help="output .onnx (default: the checkpoint path with .onnx)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    p.add_argument("--no-simplify", action="store_true", help="skip simplifying the graph with onnxslim")


def _cmd_export_onnx(args: argparse.Namespace) -> None:
    """checkpoint → one self-describing ONNX graph: image [F,3,H,W], body [N,3,h,w], frame [N] (F, N dynamic)

    emoedge export onnx runs/sample/best.pt
    emoedge export onnx runs/paper/best.pt -o model.onnx
    """
    from emoedge.export.onnx import export_onnx

    out = args.out or args.checkpoint.with_suffix(".onnx")
    result = export_onnx(args.checkpoint, out, opset=args.opset, simplify=not args.no_simplify)
    print(result.parity_line)
    print(f"ONNX model written to {result.path}")


def _add_export_precision(sub: Subparsers) -> None:
    p = _command(sub, "precision", _cmd_export_precision)
    p.add_argument("onnx", type=Path, help="the FP32 ONNX from `emoedge export onnx`")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--fp16", action="store_true", help="FP16 with AutoCast (sensitive nodes and I/O stay FP32)")
    kind.add_argument("--int8", action="store_true", help="INT8 post-training quantization, calibrated on real images")
    p.add_argument(
        "--int8-target",
        choices=("tensorrt", "cpu"),
        default="tensorrt",
        help="where the INT8 model will run: Q/DQ placed for TensorRT (Model Optimizer) or for ONNX Runtime's CPU",
    )
    p.add_argument("--calib", type=Path, help="calibration images: a folder of images (else --data's --split)")
    _gate_options(p, "the new file (and, without --calib, calibrate INT8 on --split)")
    p.add_argument("--split", default="val", choices=SPLITS, help="calibration split of --data")
    p.add_argument("--max-images", type=int, default=256, help="calibration frames at most")
    p.add_argument(
        "--high-precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="type of what INT8 leaves unquantized (TensorRT target)",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        help="output .onnx (default: <name>-fp16.onnx or <name>-int8-<target>.onnx beside the input)",
    )


def _cmd_export_precision(args: argparse.Namespace) -> None:
    """FP32 ONNX → FP16 mixed-precision or INT8 Q/DQ ONNX

    emoedge export precision model.onnx --fp16
    emoedge export precision model.onnx --int8 --data /data/EMOTIC -o model-int8.onnx
    emoedge export precision model.onnx --int8 --int8-target cpu --calib frames/ -o model-int8-cpu.onnx
    """
    from emoedge.export.precision import to_fp16, to_int8

    src = args.onnx
    kind = "fp16" if args.fp16 else f"int8-{args.int8_target}"
    out = args.out or src.with_name(f"{src.stem}-{kind}.onnx")
    if args.fp16:
        result = to_fp16(src, out, data=args.data, max_map_drop=args.max_map_drop, progress=True)
    else:
        result = to_int8(
            src,
            out,
            calib=args.calib,
            data=args.data,
            split=args.split,
            max_map_drop=args.max_map_drop,
            max_images=args.max_images,
            high_precision=args.high_precision,
            target=args.int8_target,
            progress=True,
        )
    print(result.parity_line)
    if result.map_line:
        print(result.map_line)
    print(f"{kind.upper()} ONNX written to {result.path}")


def _add_export_engine(sub: Subparsers) -> None:
    p = _command(sub, "engine", _cmd_export_engine)
    p.add_argument(
        "onnx", type=Path, help="emoedge ONNX (the FP16/INT8 one from `export precision` for TensorRT >= 10.12)"
    )
    _overrides(p, "target entries", "persons.max=8 workspace_mib=2048")
    p.add_argument(
        "--target", required=True, help=f"target YAML file, or the name of a shipped one ({_shipped('target')})"
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        help="output engine (default: the ONNX path with .engine); a .json sidecar is written beside it",
    )
    p.add_argument("--timing-cache", type=Path, help="timing cache file (default: the target's)")
    _gate_options(p, "the engine")


def _gate_options(p: argparse.ArgumentParser, what: str) -> None:
    """--data/--max-map-drop: the accuracy gate of an export step (emoedge.export.gate)."""
    p.add_argument(
        "--data", type=Path,
        help=f"dataset root: evaluate {what} and its source on the val split and refuse a larger mAP drop",
    )  # fmt: skip
    p.add_argument(
        "--max-map-drop", type=float, default=None,
        help="largest val-mAP drop (points) accepted with --data (default: 0.2 for FP16/FP32, 1.0 for INT8)",
    )  # fmt: skip


def _cmd_export_engine(args: argparse.Namespace) -> None:
    """ONNX → TensorRT engine for a target (needs TensorRT and an NVIDIA GPU)

    emoedge export engine model-fp16.onnx --target desktop-gpu -o model.engine
    emoedge export engine model-int8.onnx --target jetson-orin persons.max=8 workspace_mib=2048
    """
    from emoedge.export.targets import load_target
    from emoedge.export.tensorrt import build_engine

    target = load_target(resources.find("target", args.target), args.overrides)  # checked before TensorRT is needed
    out = args.out or args.onnx.with_suffix(".engine")
    result = build_engine(
        args.onnx, target, out, timing_cache=args.timing_cache, data=args.data, max_map_drop=args.max_map_drop
    )
    print(f"equivalent trtexec command:\n  {result.trtexec}")
    print(result.summary)
    print(result.parity_line)
    if result.gate is not None:
        print(result.gate.line)
    print(f"metadata sidecar: {result.sidecar}")


def _add_export_openvino(sub: Subparsers) -> None:
    p = _command(sub, "openvino", _cmd_export_openvino)
    p.add_argument(
        "onnx", type=Path, help="emoedge ONNX: the FP32 one from `emoedge export onnx` (any precision without --int8)"
    )
    p.add_argument(
        "-o", "--out", type=Path,
        help="output IR folder: model.xml + model.bin (default: <name>-openvino[-fp16|-int8] beside the input)",
    )  # fmt: skip
    p.add_argument(
        "--half", action="store_true",
        help="FP16 weights: half the folder, what Intel GPUs and NPUs compute in (a CPU widens them at load)",
    )  # fmt: skip
    p.add_argument("--int8", action="store_true", help="INT8 with NNCF post-training quantization on real images")
    p.add_argument(
        "--int8-device", choices=("CPU", "GPU", "NPU", "ANY"), default="CPU",
        help="the OpenVINO device the INT8 IR is quantized for (NNCF's target device)",
    )  # fmt: skip
    p.add_argument("--calib", type=Path, help="calibration images: a folder of images (else --data's --split)")
    _gate_options(p, "the IR (in OpenVINO; and, without --calib, calibrate INT8 on --split)")
    p.add_argument("--split", default="val", choices=SPLITS, help="calibration split of --data")
    p.add_argument("--max-images", type=int, default=256, help="calibration frames at most")


def _cmd_export_openvino(args: argparse.Namespace) -> None:
    """emoedge ONNX → OpenVINO IR folder (model.xml + model.bin, the card in rt_info), FP32, FP16 weights or INT8

    emoedge export openvino model.onnx   # model-openvino/, runs with --model model-openvino
    emoedge export openvino model.onnx --half -o model-openvino-fp16   # for an Intel GPU or NPU
    emoedge export openvino model.onnx --int8 --calib frames/ --data /data/EMOTIC -o model-openvino-int8
    emoedge run --source clip.mp4 --model model-openvino-int8 --device openvino:GPU
    """
    from emoedge.export.openvino import export_openvino

    src = args.onnx
    kind = "-int8" if args.int8 else "-fp16" if args.half else ""
    out = args.out or src.with_name(f"{src.stem}-openvino{kind}")
    result = export_openvino(
        src, out, half=args.half, int8=args.int8, target_device=args.int8_device, calib=args.calib, data=args.data,
        split=args.split, max_images=args.max_images, max_map_drop=args.max_map_drop, progress=True,
    )  # fmt: skip
    print(result.parity_line)
    if result.map_line:
        print(result.map_line)
    print(f"OpenVINO {result.precision.upper()} IR written to {result.path} (model.xml + model.bin)")


def _add_export_triton(sub: Subparsers) -> None:
    p = _command(sub, "triton", _cmd_export_triton)
    p.add_argument(
        "model", type=Path,
        help="emoedge ONNX (.onnx), TensorRT engine (.engine) or OpenVINO IR folder (Triton's openvino backend, cpu)",
    )  # fmt: skip
    p.add_argument("-o", "--out", type=Path, required=True, help="model repository folder (created or added to)")
    p.add_argument("--name", default="emoedge", help="model name: the folder in the repository and the URL's NAME")
    p.add_argument("--instances", type=int, default=1, help="model instances Triton runs side by side")
    p.add_argument(
        "--instance-kind", dest="kind", choices=("gpu", "cpu"), default="gpu",
        help="where the instances run (cpu: ONNX files and OpenVINO IR folders; gpu: ONNX files and engines)",
    )  # fmt: skip


def _cmd_export_triton(args: argparse.Namespace) -> None:
    """ONNX file or TensorRT engine → Triton Inference Server model repository (config.pbtxt with the card)

    emoedge export triton model.onnx -o model_repository
    emoedge export triton model.engine -o /models --name emotions --instances 2
    emoedge export triton model-openvino-int8 -o /models --instance-kind cpu   # Triton's OpenVINO backend
    emoedge run --source clip.mp4 --model grpc://gpu-server:8001/emoedge   # tritonserver serving the repository
    """
    from emoedge.export.triton import export_triton

    result = export_triton(args.model, args.out, name=args.name, instances=args.instances, kind=args.kind)
    print(f"Triton model repository: {result.config} and {result.model} ({result.platform})")
    print(f"serve it: tritonserver --model-repository {args.out}; clients: --model grpc://HOST:8001/{args.name}")
    if result.container:
        print(result.container)


def _add_run(sub: Subparsers) -> None:
    from emoedge.runtime import settings as run
    from emoedge.service.settings import ServiceSettings

    p = _command(sub, "run", _cmd_run)
    _overrides(p, f"run settings ({options.keys(run.RunSettings)})", "every=2 smooth=0")
    p.add_argument(
        "--source",
        action="append",
        help="webcam index (0), video file, rtsp:// or http(s):// URL, or image folder; repeat it for several "
        "streams in one process (ids cam0, cam1, ...)",
    )
    p.add_argument("--sources", type=Path, help="streams file (YAML): streams: [{id, source, boxes?, out?}, ...]")
    p.add_argument(
        "--model",
        type=_model,
        required=True,
        help="checkpoint (.pt), ONNX (.onnx), TensorRT engine (.engine), OpenVINO IR folder (model.xml + model.bin) or "
        "a Triton server's model (grpc://HOST:8001/NAME, http://HOST:8000/NAME)",
    )
    p.add_argument(
        "--detector",
        help="Ultralytics YOLO weights (.pt, .onnx, .engine), an official name or an http(s) URL; a missing official "
        ".pt is fetched by Ultralytics' downloader into this folder (default: yolo11n.pt)",
    )
    p.add_argument(
        "--boxes",
        type=Path,
        action="append",
        help="per-frame person boxes (JSON or CSV) instead of the detector; repeatable, matched to --source by order",
    )
    p.add_argument("-o", "--out", type=Path, help="annotated video (.mp4); with several sources a folder: DIR/<id>.mp4")
    p.add_argument(
        "--events", type=Path, help="JSON Lines event log: one record per person per frame, a summary at the end"
    )
    p.add_argument("--explain-dir", type=Path, help="folder of the explanation images (with --explain-every)")
    p.add_argument(
        "--publish",
        help="send every person event to an MQTT broker: mqtt[s]://[user:pass@]host[:port]/topic/{stream} (QoS 1)",
    )
    options.add_options(p, run.RunSettings)
    options.add_options(p, ServiceSettings)


def _cmd_run(args: argparse.Namespace) -> int:
    """tag every person of videos, streams, webcams or image folders with emotions (one or several at once)

    emoedge run --source clip.mp4 --model model.onnx -o tagged.mp4 --events events.jsonl
    emoedge run --source 0 --model model.engine --http 8080   # webcam; its live page on http://127.0.0.1:8080
    emoedge run --source rtsp://camera/stream --model model.onnx --detector yolo11n.engine every=2 smooth=0
    emoedge run --source frames/ --model best.pt --boxes boxes.json --events events.jsonl --quiet
    emoedge run --source clip.mp4 --model best.pt --explain-every 50 --explain-dir why/   # Figure 1 per person
    emoedge run --source rtsp://cam1/s --source rtsp://cam2/s --model model.engine -o videos/ --publish mqtt://broker/emoedge/{stream}
    emoedge run --sources cameras.yaml --model model.engine --events events.jsonl
    emoedge run --sources cameras.yaml --model model.engine --http 8080   # live page, /metrics, /api/streams
    """
    from emoedge.runtime import settings as run
    from emoedge.runtime.streams import load_streams, streams_from_args
    from emoedge.service.settings import ServiceSettings, address

    run_settings = options.from_args(run.RunSettings, args, args.overrides, "run settings")
    served = address(options.from_args(ServiceSettings, args, [], "service"))
    if args.sources is not None:
        if args.source or args.boxes or args.out:
            args.parser.error("--sources FILE names every stream's source, boxes and video: no --source/--boxes/-o")
        specs = load_streams(args.sources)
    elif args.source:
        specs = streams_from_args(args.source, args.boxes or [], args.out)
    else:
        args.parser.error("the following arguments are required: --source (or --sources FILE)")
    from emoedge.runtime.engine import run as run_streams
    from emoedge.service.systemd import Notifier

    with contextlib.ExitStack() as serving:
        observers = []
        if served is not None:  # listening before the model loads: a taken port is one line at once
            from emoedge.service.server import HttpService

            observers.append(serving.enter_context(HttpService(served)).attached)
        notifier = Notifier.from_environment()
        if notifier is not None:
            observers.append(notifier.attached)
        summary = run_streams(
            specs, args.model, detector=args.detector, events=args.events, publish=args.publish,
            explain_dir=args.explain_dir, sources_file=args.sources, settings=run_settings, observers=observers,
            serves=served is not None,
        )  # fmt: skip
    print(summary.describe())  # the run's result: printed under --quiet too
    return INTERRUPTED if summary.interrupted else 0  # outputs complete either way; the status says it was stopped


def _add_serve(sub: Subparsers) -> None:
    from emoedge.serve import Endpoints

    d = Endpoints()
    p = _command(sub, "serve", _cmd_serve)
    p.add_argument("model", type=Path, help="checkpoint (.pt), ONNX (.onnx) or TensorRT engine (.engine)")
    p.add_argument("--name", default="emoedge", help="model name in the clients' URLs")
    p.add_argument("--host", default=d.host, help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--grpc-port", dest="grpc_port", type=int, default=d.grpc_port, help="gRPC port")
    p.add_argument("--http-port", dest="http_port", type=int, default=d.http_port, help="HTTP port")
    p.add_argument("--metrics-port", dest="metrics_port", type=int, default=d.metrics_port, help="Prometheus port")
    p.add_argument("--instances", type=int, default=1, help="model instances answering requests side by side")
    p.add_argument("--log", type=Path, help="Triton's log file (default: triton-NAME.log in emoedge's cache folder)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _cmd_serve(args: argparse.Namespace) -> None:
    """serve a model file through a Triton Inference Server (PyTriton's bundled server; numpy < 2)

    emoedge serve model.onnx   # clients: emoedge run --model grpc://127.0.0.1:8001/emoedge ...
    emoedge serve model.engine --host 0.0.0.0 --name emotions --grpc-port 9001
    """
    from emoedge.serve import Endpoints, serve

    endpoints = Endpoints(args.host, args.grpc_port, args.http_port, args.metrics_port)
    serve(args.model, name=args.name, endpoints=endpoints, device=args.device, instances=args.instances, log=args.log)


def _add_bench(sub: Subparsers) -> None:
    from emoedge.bench.plan import BenchPlan

    p = _command(sub, "bench", _cmd_bench)
    p.add_argument(
        "model", type=Path,
        help="checkpoint (.pt), ONNX (.onnx), TensorRT engine (.engine) or OpenVINO IR folder (model.xml + model.bin)",
    )  # fmt: skip
    p.add_argument("-o", "--out", type=Path, help="also write the report into this folder: bench.md and bench.json")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    options.add_options(p, BenchPlan)


def _cmd_bench(args: argparse.Namespace) -> None:
    """measure a model file here: the engine alone, end to end with the detector, several streams

    emoedge bench model.onnx   # the tables printed here
    emoedge bench model.engine --detector yolo11n.engine --persons 1 4 16 --streams 4 -o bench-orin/
    emoedge bench best.pt --source street.mp4 --detector yolo11n.pt --device cpu -o bench-cpu/
    """
    from emoedge.bench.plan import BenchPlan
    from emoedge.bench.run import bench, markdown

    plan = options.from_args(BenchPlan, args, [], "bench")
    result = bench(args.model, args.out, plan, progress=not args.quiet)
    if args.quiet:  # the tables are the result: printed as they are without --quiet
        print(markdown(result))
    if "paths" in result:
        print(f"report: {result['paths']['markdown']}, {result['paths']['json']}")


def _add_demo(sub: Subparsers) -> None:
    p = _command(sub, "demo", _cmd_demo)
    p.add_argument("dir", type=Path, nargs="?", default="demo", help="working folder; stages already done are skipped")
    p.add_argument("--epochs", type=int, help="training epochs (default: the sample recipe's)")
    p.add_argument(
        "--detector",
        help="YOLO weights to find persons, fetched like run's (default: yolo11n.pt if present, else the sample's boxes)",
    )


def _cmd_demo(args: argparse.Namespace) -> None:
    """the offline main job: sample → train → evaluate → export ONNX → tag a clip

    emoedge demo
    emoedge demo /tmp/demo --epochs 2 --detector yolo11n.pt
    """
    from emoedge.demo import run_demo

    run_demo(args.dir, epochs=args.epochs, detector=args.detector)


# ------------------------------------------------------------------------------------------------ the entry point
def build_parser() -> argparse.ArgumentParser:
    """The whole command line (it imports the run and pretraining settings, whose defaults the options show)."""
    parser = _Parser(
        prog="emoedge",
        description="Context-aware emotion recognition (Vo & Lee 2022): train on EMOTIC, evaluate, export to "
        "ONNX/TensorRT, tag persons in video.",
        epilog=_examples(
            "emoedge sample data/sample",
            "emoedge train sample --data data/sample -o runs/sample optim.epochs=3",
            "emoedge eval runs/sample/best.pt --data data/sample",
            "emoedge export onnx runs/sample/best.pt -o model.onnx",
            "emoedge run --source clip.mp4 --model model.onnx -o tagged.mp4 --events events.jsonl",
            "emoedge demo            # all of the above, offline, on the CPU",
            "emoedge COMMAND --help  # a command's options, defaults and examples",
        ),
    )
    parser.add_argument("--version", action="version", version=f"emoedge {__version__}", help="print the version")
    sub = _group(parser, "command")
    commands = (
        _add_sample,
        _add_data,
        _add_train,
        _add_eval,
        _add_explain,
        _add_pretrain,
        _add_export,
        _add_run,
        _add_serve,
        _add_bench,
        _add_demo,
    )
    for add in commands:
        add(sub)
    return parser


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """Warnings for users are one line, without the source line Python adds by default."""
    return f"emoedge: warning: {redact_url(str(message))}\n"


def _extra_of(module: str) -> str | None:
    """The extra of emoedge (its package metadata: `Requires-Dist: ...; extra == "NAME"`) that installs `module`."""
    from importlib import metadata

    try:
        requirements = metadata.requires("emoedge") or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return None
    wanted = {_normalised(d) for d in metadata.packages_distributions().get(module, [module])}
    for line in requirements:
        name, _, marker = line.partition(";")
        found = re.match(r"[A-Za-z0-9._-]+", name.strip())
        extra = re.search(r"extra\s*==\s*[\"']([^\"']+)", marker)
        if found and extra and _normalised(found.group()) in wanted:
            return extra.group(1)
    return None


def _normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def main(argv: list[str] | None = None) -> int:
    """The `emoedge` command: parse `argv` (None: the process's command line) and run it; the exit status.

    `main()`, as the `emoedge` script and `python -m emoedge` call it, owns the process: once the command is over
    (its outputs closed) it flushes stdout and stderr and ends the process with `os._exit`, skipping the
    interpreter's teardown. That teardown takes ~0.5 s with torch loaded, and in it a signal is either lost or,
    once Python has put the default handlers back, kills the process; and a decoding thread still inside FFmpeg
    (opening a camera that does not answer, for up to its open timeout) aborts it ("terminate called without an
    active exception"). `main([...])`, for in-process callers, returns the status and restores the signal handlers.
    """
    signals = Signals().install()  # first of all: a signal while Python imports torch is an interrupt too
    try:
        code = _run_command(argv, signals)
    except Exception:  # an internal error: its traceback and status 1, the process ended like any other's
        if argv is not None:
            raise
        traceback.print_exc()
        code = 1
    finally:
        if argv is not None:
            signals.restore()
    if argv is None:
        _flush()
    if signals.received and code == 0:  # a signal after the work (while files closed): the status still says so
        code = INTERRUPTED
    if code == INTERRUPTED:
        print("emoedge: interrupted", file=sys.stderr)  # stderr is line-buffered: written at once
    if argv is None:
        os._exit(code)
    return code


def _flush() -> None:
    """Flush what the command printed and logged, as the interpreter's teardown would before the process ends (see
    `main`). A reader that went away (`emoedge ... | head`) cannot be written to; that is no reason to fail."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def _run_command(argv: list[str] | None, signals: Signals) -> int:
    """Parse and run the command; its status. Usage errors, --help and --version end by argparse's SystemExit."""
    from emoedge.fileio import removed_on_failure

    try:
        try:
            args = _parse(argv)
            with removed_on_failure():  # a failed command leaves nothing it created (unless it holds results)
                return args.func(args) or 0
        finally:
            signals.settle()
    except EmoedgeError as exc:
        print(f"emoedge: error: {redact_url(str(exc))}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional package of an extra this install left out
        extra = _extra_of((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"emoedge: error: this command needs {exc.name!r}, which is not installed: pip install 'emoedge[{extra}]'",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as exc:  # a signal inside a library (a native module initialising) that reports the interrupt
        if signals.received and _caused_by_interrupt(exc):  # as its own failure: ImportError "initialization failed"
            return INTERRUPTED
        raise


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The command's arguments. key=value overrides may follow options (`train R --data D optim.epochs=5`), which
    argparse cannot place: they come back unrecognised and join the overrides of a command that takes them."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    takes_overrides = hasattr(args, "overrides")
    stray = [a for a in extra if not (takes_overrides and "=" in a and not a.startswith("-"))]
    if stray:
        args.parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    warnings.formatwarning = _one_line_warning
    return args


if __name__ == "__main__":  # `python -m emoedge.cli`, as torchrun's --module runs it
    sys.exit(main())
