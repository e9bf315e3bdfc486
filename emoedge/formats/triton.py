"""What an emoedge model file looks like to Triton Inference Server: its tensors, its model configuration, its card.

Why here: the repository export writes this configuration, `emoedge serve` binds the same tensors, and the Triton
backend reads the card back from a server; one description keeps the three in step.

Why `max_batch_size: 0` and no dynamic batching: one call takes F frames (`image`) and N persons (`body`, `frame`),
two leading sizes, where Triton's batcher needs one batch dimension shared by every input; concatenating two requests
would also leave the second request's `frame` indices pointing at the first request's frames.

Why an engine's optimisation profile goes into the config's `parameters`: Triton refuses a request whose N or F lies
outside the engine's profile (a DLA engine fixes both), and the dims Triton reports say only -1; with the bounds
published, the `triton` backend slices, pads and groups its calls as a local engine's backend does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
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
# An engine's config `parameters` (strings, as all of Triton's are): its profile, which the `triton` backend reads back
# (absent: any N, any F), and the TensorRT version that built it, which the serving container's must equal.
BOUND_PARAMETERS = {
    "min_persons": "emoedge_min_persons",  # the profile over N (persons, `body`); a DLA engine's min = max
    "max_persons": "emoedge_max_persons",
    "min_frames": "emoedge_min_frames",  # the profile over F (frames, `image`); a DLA engine's min = max
    "max_frames": "emoedge_max_frames",
}
TENSORRT_PARAMETER = "emoedge_tensorrt"
WHOLE_NUMBER = re.compile(r"[0-9]+")
# TensorRT major.minor → NGC Triton containers (nvcr.io/nvidia/tritonserver:TAG) that ship it; only rows with evidence.
# "10.3" → 24.08-py3: Triton's QA builds the plans it tests release YY.MM with in nvcr.io/nvidia/tensorrt:YY.MM-py3
# (github.com/triton-inference-server/server, branch r24.08, qa/common/gen_qa_model_repository), as its maintainers
# advise (server issues #3904, #5812: the same-month TensorRT container's engines run in that Triton container), and
# the 24.08 TensorRT container ships TensorRT 10.3.0.26 (public users' notes; NVIDIA's frameworks support matrix, which
# lists every container's TensorRT, could not be read here: confirm with `dpkg -l | grep libnvinfer` in the container).
TRITON_CONTAINERS: dict[str, tuple[str, ...]] = {"10.3": ("24.08-py3",)}
# tensorrt_backend has INT64 I/O (the `frame` input) from its r24.05 branch on (the TensorRT 10 API port; r24.04 lacks
# nvinfer1::DataType::kINT64): github.com/triton-inference-server/tensorrt_backend, src/tensorrt_utils.cc.
FIRST_INT64_RELEASE = "24.05"
RELEASE_NOTES = "https://docs.nvidia.com/deeplearning/triton-inference-server/release-notes/"


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
class Bounds:
    """What one model call takes: N in min_persons..max_persons, F in min_frames..max_frames (None: any)."""

    min_persons: int = 1
    max_persons: int | None = None
    min_frames: int = 1
    max_frames: int | None = None

    def parameters(self) -> dict[str, str]:
        """The config `parameters` that publish these bounds (an unbounded maximum has none)."""
        values = dataclasses.asdict(self)
        return {key: str(values[field]) for field, key in BOUND_PARAMETERS.items() if values[field] is not None}


@dataclass(frozen=True)
class TritonModel:
    """An emoedge model as Triton sees it: card, tensors, and (for files Triton runs itself) platform and file; for
    an engine also its profile, the TensorRT version that built it and its DLA core."""

    card: ModelCard
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str = ""
    file_name: str = ""
    bounds: Bounds | None = None  # None: any N and F (ONNX files, IRs, checkpoints)
    tensorrt: str = ""
    dla_core: int | None = None
    version_compatible: bool = False  # an engine later TensorRT releases run (see serving_container)


def describe(path: str | Path) -> TritonModel:
    """The tensors of an emoedge checkpoint, ONNX file, engine or OpenVINO IR (folder or model.xml): sizes from its
    card, types from the file."""
    path = Path(path)
    suffix = "" if path.is_dir() else path.suffix.lower()
    platform, file_name = PLATFORMS.get(suffix, ("", ""))
    engine: dict[str, Any] = {}  # an engine's bounds, TensorRT version and DLA core, from its sidecar
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
        (low, _, high), (first, _, last) = info.persons, info.frames
        engine = {
            "bounds": Bounds(low, high, first, last),
            "tensorrt": info.tensorrt,
            "dla_core": info.dla_core,
            "version_compatible": info.version_compatible,
        }
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
    return TritonModel(card, tuple(inputs), tuple(outputs), platform, file_name, **engine)


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
    group = config.instance_group.add(count=instances, kind=pb.ModelInstanceGroup.Kind.Value(f"KIND_{kind.upper()}"))
    if model.dla_core is not None:
        _on_dla(pb, group, model.dla_core)
    parameters = {CARD_PARAMETER: model.card.to_json(), "emoedge_version": __version__}
    parameters.update(model.bounds.parameters() if model.bounds else {})
    parameters.update({TENSORRT_PARAMETER: model.tensorrt} if model.tensorrt else {})
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


def _on_dla(pb: Any, group: Any, core: int) -> None:
    """Run the group's instances on DLA core `core`: Triton's TensorRT backend takes the core from the group's one
    KIND_NVDLA secondary device (tensorrt_backend, src/tensorrt_model_instance.cc) and without one runs the engine with
    core -1, not on the DLA it was built for."""
    if "secondary_devices" not in pb.ModelInstanceGroup.DESCRIPTOR.fields_by_name:
        raise EmoedgeError(
            f"DLA engine (core {core}): the installed tritonclient's model configuration has no instance_group "
            "secondary_devices to place it on its DLA; upgrade tritonclient (pip install -U 'emoedge[triton]')"
        )
    group.secondary_devices.add(kind=pb.ModelInstanceGroup.SecondaryDevice.KIND_NVDLA, device_id=core)


def serving_container(tensorrt: str, version_compatible: bool = False) -> str:
    """One line: the NGC Triton container that runs an engine TensorRT `tensorrt` built, or how to find one (an engine
    runs only with the TensorRT version that built it, unless built version-compatible: then later releases run it
    once the server allows the lean runtime it embeds, tensorrt_backend's README)."""
    if version_compatible:
        return (
            f"this TensorRT {tensorrt} engine is version-compatible: a Triton container with TensorRT {tensorrt} or "
            "later runs it, started with `tritonserver --backend-config=tensorrt,version-compatible=true` (it loads "
            "the runtime code inside the engine: serve only engines you trust)"
        )
    release = ".".join(tensorrt.split(".")[:2])
    tags = TRITON_CONTAINERS.get(release)
    if tags:
        images = " or ".join(f"nvcr.io/nvidia/tritonserver:{tag}" for tag in tags)
        return (
            f"Triton container for this TensorRT {tensorrt} engine: {images} (TensorRT {release}, desktop and data-"
            "centre GPUs; on a Jetson, Triton's JetPack release with the same TensorRT: an engine runs only with the "
            "TensorRT version that built it)"
        )
    return (
        f"TensorRT {tensorrt} is not in emoedge's table of Triton containers: serve the engine with the Triton "
        f"container whose TensorRT is exactly {tensorrt} ({FIRST_INT64_RELEASE} or later, for the INT64 'frame' "
        f"input); Triton's release notes list each container's TensorRT: {RELEASE_NOTES}"
    )


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
    try:
        return ModelCard.from_dict(json.loads(_string_value(entry) or ""))
    except (json.JSONDecodeError, EmoedgeError) as exc:
        raise EmoedgeError(f"{where}: parameter {CARD_PARAMETER!r} is not an emoedge model card ({exc})") from None


def bounds_from_parameters(parameters: Mapping[str, Any], where: str) -> Bounds:
    """The bounds a configuration's `parameters` publish (those absent: 1 and any); a malformed one is one
    EmoedgeError line naming the parameter."""
    values = {}
    for field, key in BOUND_PARAMETERS.items():
        if key in parameters:
            text = _string_value(parameters[key])
            if not WHOLE_NUMBER.fullmatch(str(text)) or int(str(text)) < 1:
                raise EmoedgeError(f"{where}: parameter {key!r} is {text!r}, expected a whole number >= 1")
            values[field] = int(str(text))
    bounds = Bounds(**values)
    for low, high in (("min_persons", "max_persons"), ("min_frames", "max_frames")):
        top = getattr(bounds, high)
        if top is not None and getattr(bounds, low) > top:
            raise EmoedgeError(
                f"{where}: parameter {BOUND_PARAMETERS[low]!r} is {getattr(bounds, low)}, above "
                f"{BOUND_PARAMETERS[high]!r} {top}"
            )
    return bounds


def _string_value(entry: Any) -> Any:
    """A parameter's value: a JSON configuration (the clients' as_json) gives {"string_value": …}, tritonclient's
    protobuf a ModelParameter."""
    return entry.get("string_value") if isinstance(entry, dict) else getattr(entry, "string_value", None)


def config_schema() -> Any:
    """tritonclient's copy of Triton's model_config.proto (the module `model_config_pb2`)."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ModuleNotFoundError:
        raise EmoedgeError(TRITON_MISSING) from None
    return model_config_pb2
