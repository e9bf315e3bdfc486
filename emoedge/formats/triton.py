"""What an emoedge model file looks like to Triton Inference Server: its tensors, its model configuration, its card.

Why here: the repository export writes this configuration, `emoedge serve` binds the same tensors, and the Triton
backend reads the card back from a server; one description keeps the three in step.

Why `max_batch_size: 0` and no dynamic batching: one call takes F frames (`image`) and N persons (`body`, `frame`),
two leading sizes, where Triton's batcher needs one batch dimension shared by every input; concatenating two requests
would also leave the second request's `frame` indices pointing at the first request's frames.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoedge import __version__
from emoedge.card import ModelCard
from emoedge.errors import EmoedgeError
from emoedge.formats import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, IR_SUFFIXES, ONNX_SUFFIXES

CARD_PARAMETER = "emoedge_card"  # the config `parameters` key holding the model card as JSON
CARD_OUTPUT = "card"  # the output through which `emoedge serve` hands out the card (PyTriton sets no parameters)
PLATFORMS = {".onnx": ("onnxruntime_onnx", "model.onnx"), ".engine": ("tensorrt_plan", "model.plan")}
# An OpenVINO IR runs in Triton's OpenVINO backend (`backend: "openvino"`, not a platform), on CPU instances, from
# model.xml + model.bin in the version folder.
OPENVINO = ("openvino", "model.xml")
ONNX_TYPES = {1: "FP32", 10: "FP16", 7: "INT64"}  # onnx.TensorProto element types of emoedge graphs' inputs
INSTANCE_KINDS = ("gpu", "cpu")
TRITON_MISSING = "the Triton client is not installed (pip install 'emoedge[triton]')"
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a model name that is also a folder name and a URL's path


def check_name(name: str) -> str:
    """`name` as a Triton model name, or one EmoedgeError line."""
    if not MODEL_NAME.fullmatch(name):
        raise EmoedgeError(f"model name {name!r}: expected letters, digits, '_', '.' or '-' (it names a folder)")
    return name


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, Triton data type ("FP32", "INT64", "BYTES") and dims (-1: any size)."""

    name: str
    dtype: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class TritonModel:
    """An emoedge model as Triton sees it: card, tensors, and (for files Triton runs itself) platform and file."""

    card: ModelCard
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str = ""
    file_name: str = ""


def describe(path: str | Path) -> TritonModel:
    """The tensors of an emoedge checkpoint, ONNX file, engine or OpenVINO IR (folder or model.xml): sizes from its
    card, types from the file."""
    path = Path(path)
    suffix = "" if path.is_dir() else path.suffix.lower()
    platform, file_name = PLATFORMS.get(suffix, ("", ""))
    if path.is_dir() or suffix in IR_SUFFIXES:
        from emoedge.formats.openvino import card_of as ir_card_of
        from emoedge.formats.openvino import core, ir_graph, read_ir

        model = read_ir(core(), ir_graph(path))
        card, platform, file_name = ir_card_of(model, path), *OPENVINO
        has_frame = "frame" in {name for port in model.inputs for name in port.get_names()}
        types = {"image": "FP32", "body": "FP32", "frame": "INT64"}  # an emoedge graph's I/O, kept by the converter
    elif suffix in ONNX_SUFFIXES:
        from emoedge.formats.onnx import card_of, load_onnx

        model = load_onnx(path)
        card = card_of(model, path)
        types = {i.name: ONNX_TYPES.get(i.type.tensor_type.elem_type) for i in model.graph.input}
        if None in types.values():
            raise EmoedgeError(f"ONNX model {path}: input types {types} are not those of an emoedge graph")
        has_frame = "frame" in types
    elif suffix in ENGINE_SUFFIXES:
        from emoedge.formats.engine import read_engine_info

        info = read_engine_info(path)
        card, has_frame = info.card, info.has_frame
        types = {"image": "FP32", "body": "FP32", "frame": "INT64"}  # an emoedge graph's I/O, kept by every build
    elif suffix in CHECKPOINT_SUFFIXES:
        from emoedge.formats.checkpoint import read_checkpoint_card

        card, has_frame = read_checkpoint_card(path), True
        types = {"image": "FP32", "body": "FP32", "frame": "INT64"}
    else:
        known = sorted((*CHECKPOINT_SUFFIXES, *ONNX_SUFFIXES, *ENGINE_SUFFIXES, *IR_SUFFIXES))
        raise EmoedgeError(
            f"model {path}: unknown model file type {suffix or '(no suffix)'!r}; expected one of {known} or an "
            "OpenVINO IR folder"
        )
    inputs = [
        TensorSpec("image", types["image"], (-1, 3, *card.image_size)),
        TensorSpec("body", types["body"], (-1, 3, *card.body_size)),
    ]
    if has_frame:
        inputs.append(TensorSpec("frame", "INT64", (-1,)))
    outputs = [
        TensorSpec("scores", "FP32", (-1, len(card.categories))),
        TensorSpec("modality_weights", "FP32", (-1, 3)),
    ]
    if card.vad:
        outputs.append(TensorSpec("vad", "FP32", (-1, 3)))
    return TritonModel(card, tuple(inputs), tuple(outputs), platform, file_name)


def model_config(model: TritonModel, name: str, *, instances: int = 1, kind: str = "gpu") -> Any:
    """Triton's `ModelConfig` protobuf (tritonclient's schema) for a model Triton runs itself (ONNX, engine or
    OpenVINO IR)."""
    if not model.platform:
        raise EmoedgeError(f"model {name!r}: Triton runs ONNX files and engines; export a checkpoint to ONNX first")
    if kind not in INSTANCE_KINDS:
        raise EmoedgeError(f"instance kind {kind!r}: expected one of {list(INSTANCE_KINDS)}")
    if kind == "cpu" and model.platform == "tensorrt_plan":
        raise EmoedgeError("instance kind 'cpu': a TensorRT engine runs only on the GPU it was built for")
    if kind == "gpu" and model.platform == OPENVINO[0]:
        raise EmoedgeError("instance kind 'gpu': Triton's OpenVINO backend runs on the CPU; use instance kind 'cpu'")
    if instances < 1:
        raise EmoedgeError(f"instances {instances}: expected at least 1 model instance")
    pb = config_schema()
    where = {"backend": model.platform} if model.platform == OPENVINO[0] else {"platform": model.platform}
    config = pb.ModelConfig(name=name, max_batch_size=0, default_model_filename=model.file_name, **where)
    for tensors, repeated in ((model.inputs, config.input), (model.outputs, config.output)):
        for tensor in tensors:
            repeated.add(name=tensor.name, data_type=pb.DataType.Value(f"TYPE_{tensor.dtype}"), dims=tensor.dims)
    config.instance_group.add(count=instances, kind=pb.ModelInstanceGroup.Kind.Value(f"KIND_{kind.upper()}"))
    config.parameters[CARD_PARAMETER].string_value = model.card.to_json()
    config.parameters["emoedge_version"].string_value = __version__
    return config


def config_text(config: Any) -> str:
    """`config.pbtxt` text: a comment on why there is no batching, then the protobuf text format."""
    from google.protobuf import text_format

    return (
        f"# Written by emoedge {__version__}. One request is F frames (image) and N persons (body, frame): two leading\n"
        "# sizes, not one batch dimension, so max_batch_size 0 and no dynamic batching; scale with instance_group.\n"
        + text_format.MessageToString(config)
    )


def parse_config(text: str, where: str) -> Any:
    """A `config.pbtxt` read back with Triton's schema; a malformed one is one EmoedgeError line naming `where`."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, config_schema().ModelConfig())
    except text_format.ParseError as exc:
        raise EmoedgeError(f"Triton model configuration {where}: does not parse ({exc})") from None


def card_from_parameters(parameters: dict[str, Any], where: str) -> ModelCard | None:
    """The card in a model configuration's `parameters` ({key: {"string_value": …}}); None when it has none."""
    entry = parameters.get(CARD_PARAMETER)
    if entry is None:
        return None
    value = entry.get("string_value") if isinstance(entry, dict) else getattr(entry, "string_value", None)
    try:
        return ModelCard.from_dict(json.loads(value or ""))
    except (json.JSONDecodeError, EmoedgeError) as exc:
        raise EmoedgeError(f"{where}: parameter {CARD_PARAMETER!r} is not an emoedge model card ({exc})") from None


def config_schema() -> Any:
    """tritonclient's copy of Triton's model_config.proto (the module `model_config_pb2`)."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ModuleNotFoundError:
        raise EmoedgeError(TRITON_MISSING) from None
    return model_config_pb2
