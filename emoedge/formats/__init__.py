"""The model-file layer: what an emoedge file is and how to read its description, below export and backends.

Why a layer of its own: exporting a model and running one read the same files (checkpoints, ONNX graphs, engines
and their sidecars) and ask the same questions of them (whose card, which precision, which TensorRT). Kept here,
below both, `backends` never imports `export` and neither imports `training` (after mmdeploy's backend managers).

    checkpoint  training checkpoints: write atomically, read with weights_only, rebuild the network
    onnx        emoedge ONNX files: parse, card in metadata_props, stored precision and INT8 placement
    engine      TensorRT engine sidecars: the card and what the engine was built with, checked against the file
    tensorrt    importing TensorRT, its version rules, the GPU it builds for, the one process-wide logger
    openvino    OpenVINO IR folders (model.xml + model.bin): the graph's place, the card in the IR's rt_info
"""

from __future__ import annotations

# The suffixes of each kind of model file, which the backends dispatch on and evaluation treats by kind.
CHECKPOINT_SUFFIXES = (".pt", ".pth")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine",)
IR_SUFFIXES = (".xml",)  # an OpenVINO IR's graph; its folder (model.xml + model.bin) is taken as the model too
