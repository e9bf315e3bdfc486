"""ONNX file, TensorRT engine or OpenVINO IR → a Triton Inference Server model repository
(`REPO/NAME/{config.pbtxt,1/model.*}`; an IR's model.xml and model.bin, for Triton's OpenVINO backend).

Why a repository and not only a file: Triton loads what the configuration declares; with the tensors and the model
card in `config.pbtxt`, a thin client (the `triton` backend) learns categories, thresholds and preprocessing from the
server, and operators see the inputs, outputs and instance group in one file. An engine runs only with the
TensorRT version that built it, so its export also names the Triton container that has that version.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from emoedge.errors import EmoedgeError
from emoedge.fileio import atomic_write, atomic_write_text, output_folder
from emoedge.formats.openvino import IR_FILE, ir_graph
from emoedge.formats.triton import check_name, config_text, describe, model_config, parse_config, serving_container

VERSION = "1"


@dataclass(frozen=True)
class TritonExport:
    """The model's folder in the repository, its configuration and the model file Triton will load; for an engine,
    `container` is one line naming the Triton container to serve it with (or how to pick one)."""

    folder: Path
    config: Path
    model: Path
    platform: str
    container: str = ""


def export_triton(
    model: str | Path, repo: str | Path, *, name: str = "emoedge", instances: int = 1, kind: str = "gpu"
) -> TritonExport:
    """Write `repo/name/config.pbtxt` and `repo/name/1/model.onnx|model.plan|model.xml+model.bin`; the configuration
    is checked by parsing it back with Triton's schema before anything is written."""
    model = Path(model)
    described = describe(model)
    config = model_config(described, check_name(name), instances=instances, kind=kind)
    text = config_text(config)
    if parse_config(text, f"for {model}") != config:  # the text says exactly what the message holds
        raise EmoedgeError(f"Triton model configuration for {model}: does not read back as written")
    folder = output_folder(Path(repo) / name, "Triton model folder")
    target = folder / VERSION / described.file_name
    if described.file_name == IR_FILE:  # the weights first: a model.xml in place names a complete IR
        graph = ir_graph(model)
        atomic_write(target.with_suffix(".bin"), lambda tmp: shutil.copyfile(graph.with_suffix(".bin"), tmp))
        model = graph
    atomic_write(target, lambda tmp: shutil.copyfile(model, tmp))
    config_path = atomic_write_text(folder / "config.pbtxt", text)  # last: a repository with it is complete
    container = serving_container(described.tensorrt, described.version_compatible) if described.tensorrt else ""
    return TritonExport(folder, config_path, target, described.platform, container)
