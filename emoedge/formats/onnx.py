"""emoedge ONNX files: parsing, the model card in `metadata_props`, and what precision the graph stores.

Why here and not in export: the ONNX Runtime backend, the precision step and the engine build all need to read an
emoedge graph and its card, and the engine build and backends need its stored precision; export writes these keys,
everyone reads them through this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError

FORMAT = "emoedge-onnx-1"
CARD_KEY = "emoedge.card"
FORMAT_KEY = "emoedge.format"
PRECISION_KEY = "emoedge.precision"
INT8_TARGET_KEY = "emoedge.int8_target"  # which runtime an INT8 graph's Q/DQ placement is for
INT8_TARGETS = ("tensorrt", "cpu")


def load_onnx(path: str | Path) -> Any:  # -> onnx.ModelProto
    """Parse an ONNX file, turning a missing, corrupt or non-ONNX file into one EmoedgeError line."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"ONNX model {path}: file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise EmoedgeError(f"ONNX model {path}: not a readable ONNX file ({str(exc).splitlines()[0][:120]})") from None
    if model.ir_version == 0 or not model.graph.node:
        raise EmoedgeError(f"ONNX model {path}: not a readable ONNX file (no graph found)")
    return model


def metadata(model: Any) -> dict[str, str]:
    """The graph's metadata_props as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def card_of(model: Any, path: str | Path) -> ModelCard:
    """The card stored in a parsed model's metadata_props (written by `emoedge export onnx`)."""
    meta = metadata(model)
    if CARD_KEY not in meta:
        raise EmoedgeError(
            f"ONNX model {path}: not produced by emoedge (no {CARD_KEY!r} metadata; producer "
            f"{model.producer_name or 'unknown'!r}); export it with `emoedge export onnx`"
        )
    if meta.get(FORMAT_KEY) != FORMAT:
        raise EmoedgeError(f"ONNX model {path}: format {meta.get(FORMAT_KEY)!r} is not supported (expected {FORMAT!r})")
    try:
        return ModelCard.from_json(meta[CARD_KEY])
    except EmoedgeError as exc:
        raise EmoedgeError(f"ONNX model {path}: {exc}") from None
    except (TypeError, ValueError) as exc:  # a field of the wrong type inside valid JSON
        raise EmoedgeError(f"ONNX model {path}: model card does not parse ({exc})") from None


def read_onnx_card(path: str | Path) -> ModelCard:
    """The model card of an emoedge ONNX file; any other file is one EmoedgeError line naming it."""
    return card_of(load_onnx(path), path)


def graph_precision(model: Any) -> str:
    """'int8' for a Q/DQ graph, 'fp16' when the weights are FP16 (from `emoedge export precision`), else 'fp32'."""
    from onnx import TensorProto

    if any(node.op_type == "QuantizeLinear" for node in model.graph.node):
        return "int8"
    if any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


def stored_types(model: Any) -> tuple[str, ...]:
    """The numeric types a graph computes in: 'int8' where it has Q/DQ, 'fp16' where it has FP16 weights, and
    'fp32' (its inputs and outputs always are), narrowest first."""
    precision = graph_precision(model)
    types = {"fp32", precision}
    if precision == "int8":
        from onnx import TensorProto

        if any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer):
            types.add("fp16")
    return tuple(t for t in ("int8", "fp16", "fp32") if t in types)


def int8_target(model: Any) -> str | None:
    """Which runtime an INT8 graph was quantized for ('tensorrt' or 'cpu'); None for other graphs."""
    if graph_precision(model) != "int8":
        return None
    return metadata(model).get(INT8_TARGET_KEY, "tensorrt")
