"""TensorRT backend: an engine from `emoedge export engine`, run on a CUDA stream of its own.

Why torch tensors as device buffers (as torch2trt does): PyTorch already owns the CUDA context, allocator and
streams, so no second CUDA binding (pycuda, cuda-python) is needed and inputs may arrive as CUDA tensors without a
copy. Why a stream of its own: on the legacy default stream TensorRT adds device-wide synchronisations (its docs
warn of them); the backend's stream waits for torch's current stream before the engine runs (the inputs are
ready) and torch's current stream waits for it after (the outputs are ready), so ordering holds both ways.
Outputs are allocated once, at the profile maximum, read after every runtime-shaped input (`image`, `body` and
`frame`) is set to its maximum: before that TensorRT may report -1 for them. The profile's N bounds become
`min_persons`/`max_persons`, which base.Backend slices and pads to (a DLA engine has one fixed N: min = max); more
frames than the profile's maximum F run in groups, fewer than its minimum are padded with blank frames (base.Backend
too). Engines built before the `frame` input take one frame per call. The sidecar
is read before TensorRT is imported: a foreign or undescribed engine is one line naming why, not a
deserialisation failure. A version-compatible engine carries TensorRT's lean runtime, host code the runtime must be
allowed to load (`engine_host_code_allowed`); emoedge allows it for engines whose sidecar says they were built so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoedge.backends.base import Backend
from emoedge.card import ModelCard
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.formats.engine import REBUILD, check_compatible, check_dla_cores, read_engine_info
from emoedge.formats.tensorrt import cuda_gpu, import_tensorrt, tensorrt_logger

INPUTS = ("image", "body")  # and "frame" in engines built from a multi-frame ONNX


class TensorRTBackend(Backend):
    """One engine and one execution context. `device`: "auto" (the current GPU) or "cuda[:K]"; `precision` is the
    engine's own ("auto" accepts it; another value is an error, since precision is fixed when the engine is built).
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, *, device: str = "auto", precision: str = "auto") -> None:
        self.path = Path(path)
        self.info = read_engine_info(self.path)
        self.card = self.info.card
        if precision not in ("auto", self.info.precision):
            raise EmoedgeError(
                f"precision {precision!r}: engine {self.path} was built for {self.info.precision}, and an engine's "
                "precision is fixed when it is built (the target's precision); use 'auto'"
            )
        self.precision = self.info.precision
        index = parse_device(device, kinds=("auto", "cuda"), who="the tensorrt backend").index  # None: the current GPU
        trt = import_tensorrt()
        gpu = cuda_gpu(index)
        check_compatible(self.info, self.path, tensorrt_version=trt.__version__, gpu=gpu)
        self.index = torch.cuda.current_device() if index is None else index
        self.device = f"cuda:{self.index}"
        self._logger = tensorrt_logger(trt)  # process-wide; outlives the runtime, engine and context
        mark = self._logger.record.mark()
        with torch.cuda.device(self.index):
            self._runtime = trt.Runtime(self._logger)
            if self.info.dla_core is not None:  # a DLA engine runs on the core the runtime names
                check_dla_cores(self.info, self.path, self._runtime.num_DLA_cores)
                self._runtime.DLA_core = self.info.dla_core
            if self.info.version_compatible:  # the plan's lean runtime is code TensorRT loads from the file
                self._runtime.engine_host_code_allowed = True
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                reason = self._logger.record.error_since(mark, "corrupt or truncated")
                raise EmoedgeError(f"engine {self.path}: TensorRT cannot deserialize it ({reason}); {REBUILD}")
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.index)
        self._bind(trt)
        typing = "strongly" if self.info.strongly_typed else "weakly"
        self.reason = (
            f"TensorRT {trt.__version__} engine for target {self.info.target!r} on {gpu.name} ({self.device}), "
            f"{self.precision}, {typing} typed, persons {self.min_persons}..{self.max_persons}, "
            f"frames {self.min_frames}..{self.max_frames}"
        )

    def _bind(self, trt) -> None:
        """Check the I/O names, set every input to the profile maximum, then allocate every output once at the shape
        that gives and bind it by name."""
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = sorted(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.has_frame = "frame" in inputs
        if sorted(set(inputs) - {"frame"}) != sorted(INPUTS) or "scores" not in self.output_names:
            raise EmoedgeError(
                f"engine {self.path}: inputs {inputs} and outputs {self.output_names}, expected inputs {list(INPUTS)} "
                f"and a 'scores' output; {REBUILD} from an emoedge ONNX"
            )
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n), n, self.path) for n in names}
        low, _, high = self.engine.get_tensor_profile_shape("body", 0)
        self.min_persons, self.max_persons = int(low[0]), int(high[0])
        self.min_frames = self.max_frames = 1
        if self.has_frame:
            low, _, high = self.engine.get_tensor_profile_shape("image", 0)
            self.min_frames, self.max_frames = int(low[0]), int(high[0])
        shapes = max_input_shapes(self.card, self.max_persons, self.max_frames, has_frame=self.has_frame)
        for name, shape in shapes.items():
            self._set_shape(name, shape)
        self.outputs: dict[str, torch.Tensor] = {}
        for name in self.output_names:
            shape = output_shape(self.path, name, self.context.get_tensor_shape(name), shapes)
            self.outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, self.outputs[name].data_ptr())

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        """One engine call: N and F within the profile (base.Backend slices and pads both)."""
        count = int(body.shape[0])
        with torch.cuda.device(self.index):
            frames, crops = self._tensor(image, "image"), self._tensor(body, "body")
            index = torch.from_numpy(frame).to(self.device, self.dtypes.get("frame", torch.int64))
            mark = self._logger.record.mark()
            bound = (("image", frames), ("body", crops)) + ((("frame", index),) if self.has_frame else ())
            for name, tensor in bound:
                self._set_shape(name, tuple(tensor.shape))
                self.context.set_tensor_address(name, tensor.data_ptr())
            current = torch.cuda.current_stream()
            self.stream.wait_stream(current)  # the inputs were made on torch's stream
            ok = self.context.execute_async_v3(self.stream.cuda_stream)
            current.wait_stream(self.stream)  # the outputs are read on torch's stream
            for _, tensor in bound:
                tensor.record_stream(self.stream)  # the allocator must not reuse them before the engine has read them
            if not ok:
                reason = self._logger.record.error_since(mark)
                raise EmoedgeError(f"engine {self.path}: TensorRT failed to run it ({reason})")
            return {name: out[:count].float().cpu().numpy() for name, out in self.outputs.items()}

    def _set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """`set_input_shape`, whose False (a shape outside the profile) becomes one line naming both."""
        if not self.context.set_input_shape(name, shape):
            dynamic = name == "body" or self.has_frame  # a single-frame engine's `image` is static: no profile
            low, _, high = self.engine.get_tensor_profile_shape(name, 0) if dynamic else ((), (), ())
            allowed = f"; the profile allows {list(low)} to {list(high)}" if len(low) else ""
            raise EmoedgeError(
                f"engine {self.path}: input {name!r} of shape {list(shape)} refused by TensorRT{allowed}"
            )

    def _tensor(self, value: Any, name: str) -> torch.Tensor:
        """A contiguous NCHW CUDA tensor of the engine's input type, from a numpy array or any torch tensor."""
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        return tensor.to(self.device, self.dtypes[name], non_blocking=True).contiguous()


def max_input_shapes(
    card: ModelCard, max_persons: int, max_frames: int, *, has_frame: bool
) -> dict[str, tuple[int, ...]]:
    """Every runtime-shaped input at the profile's maximum: TensorRT computes output shapes only once all are set."""
    shapes: dict[str, tuple[int, ...]] = {
        "image": (max_frames, 3, *card.image_size),
        "body": (max_persons, 3, *card.body_size),
    }
    if has_frame:
        shapes["frame"] = (max_persons,)
    return shapes


def output_shape(path: Path, name: str, dims: Any, inputs: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """An output's shape once every input is set, or one line when TensorRT still leaves a dimension unknown (-1)."""
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        given = ", ".join(f"{key} {list(value)}" for key, value in inputs.items())
        raise EmoedgeError(
            f"engine {path}: output {name!r} has shape {list(shape)} with every input at its profile maximum "
            f"({given}): TensorRT leaves a dimension unknown, so no buffer can be allocated for it; {REBUILD}"
        )
    return shape


def _torch_dtype(trt, dtype, name: str, path: Path) -> torch.dtype:
    types = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,  # `frame` (TensorRT 10+)
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    if dtype not in types:
        raise EmoedgeError(f"engine {path}: tensor {name!r} has data type {dtype}, which emoedge does not bind")
    return types[dtype]
