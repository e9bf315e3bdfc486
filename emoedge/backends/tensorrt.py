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

Why CUDA graphs of `enqueueV3` (on by default, `cuda_graphs`): TensorRT's guidance for small batches, where the
engine's kernel launches cost as much as their work. One graph per (F, N) bucket (emoedge.backends.cuda_graphs),
each captured from an execution context of its own, whose shapes are set once: a captured graph holds the kernels
of the shapes at capture, and a context's internal state follows its current shapes, so contexts are not shared
between shapes (TensorRT's docs: call enqueueV3 once after a shape change before capturing). Every graph's context
binds the same inputs (float32 F×N at the profile maximum, a bucket reads their first rows) and outputs, and all
contexts share one block of activation memory (`USER_MANAGED`): calls never overlap. A DLA engine runs eagerly:
DLA tasks are not captured. Unverified here: written against TensorRT's documented Python API on a machine without
TensorRT or a GPU; tests/gpu/test_gpu_graphs.py compares graphs with eager wherever both are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoedge.backends.base import Backend
from emoedge.backends.cuda_graphs import GraphBuckets, Step
from emoedge.card import ModelCard
from emoedge.devices import graphs_wanted, parse_device
from emoedge.errors import EmoedgeError
from emoedge.formats.engine import REBUILD, check_compatible, check_dla_cores, read_engine_info
from emoedge.formats.tensorrt import cuda_gpu, import_tensorrt, tensorrt_logger

INPUTS = ("image", "body")  # and "frame" in engines built from a multi-frame ONNX


class TensorRTBackend(Backend):
    """One engine and one execution context. `device`: "auto" (the current GPU) or "cuda[:K]"; `precision` is the
    engine's own ("auto" accepts it; another value is an error, since precision is fixed when the engine is built).
    """

    name = "tensorrt"

    def __init__(
        self, path: str | Path, *, device: str = "auto", precision: str = "auto", cuda_graphs: str = "auto"
    ) -> None:
        self.path = Path(path)
        self.info = read_engine_info(self.path)
        self.card = self.info.card
        graphs = graphs_wanted(cuda_graphs, self.info.dla_core is None, f"engine {self.path} runs on a DLA core")
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
            self.scratch = shared_scratch(self.engine, self.device) if graphs else None
            self.context = self._new_context(trt)
            self.stream = torch.cuda.Stream(self.index)
        self._bind(trt)
        self._trt, self._graphs, self._contexts = trt, None, []  # the graphs' own contexts (see _graph_step)
        if graphs:
            self.bucketed = True  # within the profile's bounds: base.Backend pads F and N to buckets
            self.static = {name: torch.zeros(shape, dtype=self.dtypes[name], device=self.device)
                           for name, shape in self.max_shapes.items()}  # fmt: skip
            self._graphs = GraphBuckets(self.device, self._graph_step, self.output_names, self._eager,
                                        strict=cuda_graphs == "on")  # fmt: skip
        typing = "strongly" if self.info.strongly_typed else "weakly"
        how = "CUDA graphs per shape bucket" if graphs else f"eager ({graphs_off(cuda_graphs, self.info.dla_core)})"
        self.reason = (
            f"TensorRT {trt.__version__} engine for target {self.info.target!r} on {gpu.name} ({self.device}), "
            f"{self.precision}, {typing} typed, persons {self.min_persons}..{self.max_persons}, "
            f"frames {self.min_frames}..{self.max_frames}, {how}"
        )

    @property
    def graph_shapes(self) -> list[tuple[int, int]]:
        """(F, N) of every CUDA graph captured so far (none without graphs)."""
        return sorted(self._graphs.captured) if self._graphs is not None else []

    def _new_context(self, trt) -> Any:
        """An execution context: with graphs, one that uses the shared activation memory (`scratch`)."""
        if self.scratch is None:
            return self.engine.create_execution_context()
        context = self.engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        context.set_device_memory(self.scratch.data_ptr(), self.scratch.numel())
        return context

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
        self.max_shapes = shapes
        for name, shape in shapes.items():
            self._set_shape(name, shape)
        self.outputs: dict[str, torch.Tensor] = {}
        for name in self.output_names:
            shape = output_shape(self.path, name, self.context.get_tensor_shape(name), shapes)
            self.outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, self.outputs[name].data_ptr())

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        """One engine call: N and F within the profile (base.Backend slices and pads both)."""
        if self._graphs is not None:
            return self._graphs.run(image, body, frame)
        return self._eager(image, body, frame)

    def _graph_step(self, frames: int, persons: int) -> Step:
        """What the graph of (F, N) captures: the bucket's rows copied into the inputs every context binds (cast
        to the engine's types), then enqueueV3 of a context set to F and N once."""
        if not hasattr(self, "static"):  # inputs at the profile maximum, bound by every graph's context
            self.static = {name: torch.zeros(shape, dtype=self.dtypes[name], device=self.device)
                           for name, shape in self.max_shapes.items()}  # fmt: skip
        context = self._new_context(self._trt)  # one per graph: a context's state follows its current shapes
        shapes = max_input_shapes(self.card, persons, frames, has_frame=self.has_frame)
        for name, shape in shapes.items():
            self._set_shape(name, shape, context)
            context.set_tensor_address(name, self.static[name].data_ptr())
        for name, output in self.outputs.items():
            context.set_tensor_address(name, output.data_ptr())
        self._contexts.append(context)  # alive as long as its graph

        def step(image: torch.Tensor, body: torch.Tensor, frame: torch.Tensor) -> list[torch.Tensor]:
            for name, value in zip(shapes, (image, body, frame)):
                self.static[name][: value.shape[0]].copy_(value)
            mark = self._logger.record.mark()
            if not context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
                raise RuntimeError(f"TensorRT failed to run it: {self._logger.record.error_since(mark)}")
            return [self.outputs[name][:persons] for name in self.output_names]

        return step

    def _eager(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        """One engine call on the caller's inputs, bound where they lie: the path without graphs."""
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

    def _set_shape(self, name: str, shape: tuple[int, ...], context: Any = None) -> None:
        """`set_input_shape` (on the main context, or `context`), whose False (a shape outside the profile) becomes
        one line naming both."""
        if not (context or self.context).set_input_shape(name, shape):
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


def graphs_off(cuda_graphs: str, dla_core: int | None) -> str:
    """Why an engine runs without CUDA graphs: asked so, or a DLA engine (DLA tasks are not captured)."""
    return "cuda_graphs off" if cuda_graphs == "off" else f"DLA core {dla_core}: no CUDA graphs"


def shared_scratch(engine: Any, device: str) -> torch.Tensor:
    """One block of activation memory for every execution context of `engine` (the largest any profile needs):
    contexts that never run at once may share it (TensorRT's `setDeviceMemory`)."""
    size = int(engine.device_memory_size_v2)
    return torch.empty(max(size, 1), dtype=torch.uint8, device=device)


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
