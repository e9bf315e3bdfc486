"""Checkpoint → one self-describing ONNX graph (SPEC §7), checked against PyTorch before it is written.

Why the TorchScript exporter (`dynamo=False`): in torch 2.14 the torch.export-based exporter needs `onnxscript`
and `onnx_ir`, which are not among emoedge's dependencies, and takes ~10× longer; both give the same operators
once onnxslim has folded the shape arithmetic, and `dynamic_axes` keeps F ("frames", of `image`) and N ("persons",
of `body` and `frame`) symbolic to every output. The context branches see only `image` [F,3,H,W], so they are
evaluated once per frame whatever N is; `frame` [N] says which frame each person belongs to.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emoedge import __version__
from emoedge.card import ModelCard
from emoedge.fileio import atomic_write, output_file
from emoedge.formats.onnx import CARD_KEY, FORMAT, FORMAT_KEY
from emoedge.settings import checked

log = logging.getLogger(__name__)

INPUTS = ("image", "body", "frame")
PARITY_SHAPES = ((1, 1), (1, 3), (2, 3))  # (frames F, persons N) checked against PyTorch
# 11: the oldest opset the graph exports to; 20: the newest of torch's TorchScript exporter (used: dynamo=False)
OPSETS = range(11, 21)
PARITY_TOLERANCE = 1e-3  # scores are probabilities: a larger gap means a wrong graph, not rounding


@dataclass(frozen=True)
class ExportResult:
    """Where the graph went and how far ONNX Runtime's outputs were from PyTorch's (max over `shapes_checked`)."""

    path: Path
    max_abs_diff: float  # of `scores`
    shapes_checked: tuple[tuple[int, int], ...]  # (frames F, persons N)
    diffs: dict[str, float] = field(default_factory=dict)  # every output, by name

    @property
    def parity_line(self) -> str:
        others = ", ".join(f"|Δ{k}| = {v:.1e}" for k, v in self.diffs.items() if k != "scores")
        shapes = " ".join(f"{f}x{n}" for f, n in self.shapes_checked)
        return f"parity: max |Δscore| = {self.max_abs_diff:.1e} over F×N = {shapes}" + (
            f" ({others})" if others else ""
        )


def export_onnx(checkpoint: Path, out: Path, *, opset: int = 18, simplify: bool = True) -> ExportResult:
    """Export a training checkpoint to `out`: inputs image [F,3,H,W], body [N,3,h,w] and frame [N], F and N dynamic.

    The graph is checked (onnx.checker), optionally simplified (onnxslim), run in ONNX Runtime against PyTorch
    for each (F, N) of PARITY_SHAPES, and only then written, atomically, with the card in `metadata_props`.
    """
    import onnx

    from emoedge.formats.checkpoint import load_trained_model
    from emoedge.model.deploy import DeployModel

    opset = checked(int, opset, "opset", low=OPSETS[0], high=OPSETS[-1])
    output_file(out, "ONNX output", (".onnx",))  # before the export's work, not after it
    net, card, _ = load_trained_model(checkpoint)
    deploy = DeployModel(net).eval()
    model = _to_onnx(deploy, card, opset)
    if simplify:
        import onnxslim

        model = onnxslim.slim(model)
    _keep_every_input(model, card)
    _describe(model, card)
    onnx.checker.check_model(model, full_check=True)
    diffs = _parity(deploy, model, card)
    result = ExportResult(Path(out), diffs["scores"], PARITY_SHAPES, diffs)
    if result.max_abs_diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export of {checkpoint}: {result.parity_line} exceeds {PARITY_TOLERANCE}; not written")
    atomic_write(out, lambda tmp: tmp.write_bytes(model.SerializeToString()))
    log.info("%s written; %s", out, result.parity_line)
    return result


def example_inputs(card: ModelCard, persons: int, seed: int = 0, frames: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-range random inputs of the card's sizes: `frames` frames and `persons` body crops."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(frames, 3, *card.image_size, generator=gen)
    body = torch.randn(persons, 3, *card.body_size, generator=gen)
    return image, body


def spread(persons: int, frames: int) -> torch.Tensor:
    """`frame` for `persons` dealt over `frames` in turn (0, 1, ..., 0, 1, ...): every frame gets persons."""
    return torch.arange(persons, dtype=torch.int64) % frames


def _to_onnx(deploy, card: ModelCard, opset: int):
    import onnx

    names = deploy.output_names
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter is deprecated
        torch.onnx.export(
            deploy,
            (*example_inputs(card, persons=3, frames=2), spread(3, 2)),  # F, N > 1: no size-1 broadcast baked in
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUTS),
            output_names=list(names),
            dynamic_axes={
                "image": {0: "frames"},
                "body": {0: "persons"},
                "frame": {0: "persons"},
                **{name: {0: "persons"} for name in names},
            },
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def _keep_every_input(model, card: ModelCard) -> None:
    """Give the graph back the inputs its model does not read (a body-only model ignores `image` and `frame`; the
    exporter drops them): every emoedge graph takes the same three inputs, so every backend feeds it alike."""
    import onnx

    shapes = {"image": ("frames", 3, *card.image_size), "body": ("persons", 3, *card.body_size), "frame": ("persons",)}
    types = {"image": onnx.TensorProto.FLOAT, "body": onnx.TensorProto.FLOAT, "frame": onnx.TensorProto.INT64}
    present = {i.name: i for i in model.graph.input}
    inputs = [
        present.get(name) or onnx.helper.make_tensor_value_info(name, types[name], shapes[name]) for name in INPUTS
    ]
    del model.graph.input[:]
    model.graph.input.extend(inputs)  # in the order of INPUTS, as the exporter writes them


def _describe(model, card: ModelCard) -> None:
    """Write the card, the format tag and the producer into the model (after onnxslim, which may rewrite them)."""
    import onnx

    model.producer_name, model.producer_version = "emoedge", __version__
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {CARD_KEY: card.to_json(), FORMAT_KEY: FORMAT})


def _parity(deploy, model, card: ModelCard) -> dict[str, float]:
    """Max |ONNX Runtime − PyTorch| per output over PARITY_SHAPES, both in FP32 on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    diffs = dict.fromkeys(deploy.output_names, 0.0)
    for frames, persons in PARITY_SHAPES:
        image, body = example_inputs(card, persons, seed=persons, frames=frames)
        frame = spread(persons, frames)
        with torch.inference_mode():
            expected = [t.numpy() for t in deploy(image, body, frame)]
        got = session.run(list(diffs), {"image": image.numpy(), "body": body.numpy(), "frame": frame.numpy()})
        for name, a, b in zip(diffs, expected, got):
            diffs[name] = max(diffs[name], float(np.abs(a - b).max()))
    return diffs
