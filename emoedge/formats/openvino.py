"""OpenVINO IR folders (model.xml + model.bin): where a folder's graph is, and the model card in the IR's `rt_info`.

Why a folder: an IR is two files (the graph's XML and its weights' BIN) that only work together, and Ultralytics'
OpenVINO export ships them as one folder too; `emoedge` takes the folder (or its model.xml) wherever it takes a model
file. Why `rt_info`: it is the IR's own metadata, saved inside model.xml and read back by `Core.read_model`, so the
folder describes itself as an emoedge ONNX file does with `metadata_props`: the same card JSON and format tag, under
the `emoedge` section, and the precision the weights were stored or quantized in.

Why one OpenVINO Core per process (`core()`): OpenVINO's CPU plugin — one per Core, made when the Core first uses
the CPU — maps a signal stack of its own and installs it (`sigaltstack`) on the thread that made it, and when the
plugin is destroyed it puts back the stack it found and unmaps its own. Two Cores destroyed in the order they were
made (or in any order but the reverse) leave the thread's signal stack pointing at unmapped memory, and the next
signal handled on it kills the process with SIGSEGV: CPython installs its handlers with SA_ONSTACK, torch's
DataLoader handles SIGCHLD, so a training or an export after a few OpenVINO models had come and gone died when a
worker or a child process exited (faulthandler cannot report it: its handler runs on that stack too). One Core, kept
for the life of the process, makes the plugin once and never destroys it before exit.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.formats import IR_SUFFIXES
from emoedge.formats.onnx import FORMAT as ONNX_FORMAT

__all__ = [
    "IR_FILE", "IR_SUFFIXES", "card_of", "core", "describe", "ir_graph", "ir_precision", "read_ir", "read_ir_card",
]  # fmt: skip
IR_FILE = "model.xml"  # the graph's name inside an IR folder written by `emoedge export openvino`
SECTION = "emoedge"  # the rt_info section emoedge writes: card, format, precision
FORMAT = "emoedge-openvino-1"
FORMATS = (FORMAT, ONNX_FORMAT)  # an IR converted from an emoedge ONNX file (its metadata kept) reads too
IR_PRECISIONS = ("fp32", "fp16", "int8")  # what an IR stores: FP32 or FP16 weights, or NNCF's INT8 FakeQuantize
OPENVINO_MISSING = "OpenVINO is not installed (pip install 'emoedge[runtime]' on x86-64, or pip install openvino)"


_CORE: list[Any] = []  # the process's one ov.Core, made on first use (core())
_CORE_LOCK = threading.Lock()


def core() -> Any:  # -> ov.Core
    """The process's one OpenVINO Core, made on first use (see the module's docstring: Cores made and destroyed one
    after another leave a dangling signal stack behind). Every OpenVINO model emoedge reads or compiles uses it."""
    with _CORE_LOCK:
        if not _CORE:
            import openvino as ov

            _CORE.append(ov.Core())
        return _CORE[0]


def ir_graph(path: str | Path) -> Path:
    """The model.xml of an IR folder (or the .xml given), its .bin checked beside it; else one EmoedgeError line."""
    path = Path(path)
    if path.is_dir():
        graphs = [path / IR_FILE] if (path / IR_FILE).is_file() else sorted(path.glob("*.xml"))
        if len(graphs) != 1:
            found = "no .xml file" if not graphs else f"{len(graphs)} .xml files and no {IR_FILE}"
            raise EmoedgeError(f"OpenVINO IR folder {path}: {found} in it (expected {IR_FILE} and model.bin)")
        path = graphs[0]
    elif not path.is_file():
        raise EmoedgeError(f"OpenVINO IR {path}: file not found")
    if not path.with_suffix(".bin").is_file():
        raise EmoedgeError(f"OpenVINO IR {path}: its weights {path.with_suffix('.bin').name} are missing beside it")
    return path


def rt_value(model: Any, key: str) -> str | None:
    """The string stored under `emoedge/key` in an ov.Model's rt_info, or None."""
    if not model.has_rt_info([SECTION, key]):
        return None
    return str(model.get_rt_info([SECTION, key]).astype(str))


def describe(model: Any, card: ModelCard, precision: str) -> None:
    """Write the card, the format tag and the stored precision into an ov.Model's rt_info (before `save_model`)."""
    if precision not in IR_PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {IR_PRECISIONS}")
    for key, value in (("card", card.to_json()), ("format", FORMAT), ("precision", precision)):
        model.set_rt_info(value, [SECTION, key])


def card_of(model: Any, path: str | Path) -> ModelCard:
    """The card in an ov.Model's rt_info (written by `emoedge export openvino`); a foreign IR is one line."""
    text, form = rt_value(model, "card"), rt_value(model, "format")
    if text is None:
        raise EmoedgeError(
            f"OpenVINO IR {path}: not produced by emoedge (no {SECTION}/card in its rt_info); "
            "export it with `emoedge export openvino`"
        )
    if form not in FORMATS:
        raise EmoedgeError(f"OpenVINO IR {path}: format {form!r} is not supported (expected {FORMAT!r})")
    try:
        return ModelCard.from_json(text)
    except EmoedgeError as exc:
        raise EmoedgeError(f"OpenVINO IR {path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise EmoedgeError(f"OpenVINO IR {path}: model card does not parse ({exc})") from None


def ir_precision(model: Any) -> str:
    """'int8' (FakeQuantize or Q/DQ-derived nodes), else the precision the export recorded, else 'fp32'."""
    if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()):
        return "int8"
    stored = rt_value(model, "precision")
    return stored if stored in IR_PRECISIONS else "fp32"


def read_ir_card(path: str | Path) -> ModelCard:
    """The model card of an emoedge IR folder (or model.xml)."""
    graph = ir_graph(path)
    return card_of(read_ir(core(), graph), path)


def read_ir(ov_core: Any, graph: Path) -> Any:  # -> ov.Model
    """`ov_core.read_model` of an IR graph, a corrupt file being one EmoedgeError line."""
    try:
        return ov_core.read_model(str(graph))
    except RuntimeError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip() and "Exception from" not in line), "")
        raise EmoedgeError(f"OpenVINO IR {graph}: OpenVINO cannot read it ({first.strip()[:160]})") from None
