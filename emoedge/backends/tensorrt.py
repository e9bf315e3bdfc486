"""TensorRT backend: an engine from `emoedge export engine`, run on torch's current CUDA stream.

Why torch tensors as device buffers (as torch2trt does): PyTorch already owns the CUDA context, allocator and
streams, so no second CUDA binding (pycuda, cuda-python) is needed, inputs may arrive as CUDA tensors without a
copy, and the engine's work is ordered with the caller's on one stream. Outputs are allocated once, at the profile
maximum. The sidecar is read before TensorRT is imported: a foreign or undescribed engine is one line naming why,
not a deserialisation failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoedge.backends.base import Backend
from emoedge.errors import EmoedgeError
from emoedge.formats.engine import REBUILD, check_compatible, read_engine_info
from emoedge.formats.tensorrt import cuda_gpu, import_tensorrt, tensorrt_logger

INPUTS = ("image", "body")


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
        index = _device_index(device)
        trt = import_tensorrt()
        gpu_name, capability = cuda_gpu(index)
        check_compatible(
            self.info, self.path, tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=capability
        )
        self.index = torch.cuda.current_device() if index is None else index
        self.device = f"cuda:{self.index}"
        self._logger = tensorrt_logger(trt)  # must outlive the runtime, engine and context
        with torch.cuda.device(self.index):
            self._runtime = trt.Runtime(self._logger)
            if self.info.dla_core is not None:  # a DLA engine runs on the core the runtime names
                self._runtime.DLA_core = self.info.dla_core
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                reason = self._logger.errors[-1] if self._logger.errors else "corrupt or truncated"
                raise EmoedgeError(f"engine {self.path}: TensorRT cannot deserialize it ({reason}); {REBUILD}")
            self.context = self.engine.create_execution_context()
        self._bind(trt)
        typing = "strongly" if self.info.strongly_typed else "weakly"
        self.reason = (
            f"TensorRT {trt.__version__} engine for target {self.info.target!r} on {gpu_name} ({self.device}), "
            f"{self.precision}, {typing} typed, persons {self.min_persons}..{self.max_persons}"
        )

    def _bind(self, trt) -> None:  # noqa: ANN001 (the tensorrt module)
        """Check the I/O names, then allocate every output once at the profile maximum and bind it by name."""
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = sorted(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != sorted(INPUTS) or "scores" not in self.output_names:
            raise EmoedgeError(
                f"engine {self.path}: inputs {inputs} and outputs {self.output_names}, expected inputs {list(INPUTS)} "
                f"and a 'scores' output; {REBUILD} from an emoedge ONNX"
            )
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n), n, self.path) for n in names}
        low, _, high = self.engine.get_tensor_profile_shape("body", 0)
        self.min_persons, self.max_persons = int(low[0]), int(high[0])
        self.context.set_input_shape("image", (1, 3, *self.card.image_size))
        self.context.set_input_shape("body", (self.max_persons, 3, *self.card.body_size))
        self.outputs: dict[str, torch.Tensor] = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            self.outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, self.outputs[name].data_ptr())
        self._inputs: tuple[torch.Tensor, ...] = ()

    def _infer(self, image: Any, body: Any) -> dict[str, np.ndarray]:
        persons = int(body.shape[0])
        if not self.min_persons <= persons <= self.max_persons:
            raise EmoedgeError(
                f"{persons} persons in one frame: engine {self.path} takes {self.min_persons} to {self.max_persons} "
                f"(its target's persons); rebuild it with a target whose persons range includes {persons}"
            )
        with torch.cuda.device(self.index):
            stream = torch.cuda.current_stream()
            # Held on self until the stream is synchronised: TensorRT reads them asynchronously.
            self._inputs = (self._tensor(image, "image"), self._tensor(body, "body"))
            for name, tensor in zip(INPUTS, self._inputs):
                self.context.set_input_shape(name, tuple(tensor.shape))
                self.context.set_tensor_address(name, tensor.data_ptr())
            ok = self.context.execute_async_v3(stream.cuda_stream)
            stream.synchronize()
            self._inputs = ()
        if not ok:
            reason = self._logger.errors[-1] if self._logger.errors else "no reason given"
            raise EmoedgeError(f"engine {self.path}: TensorRT failed to run it ({reason})")
        return {name: out[:persons].float().cpu().numpy() for name, out in self.outputs.items()}

    def _tensor(self, value: Any, name: str) -> torch.Tensor:
        """A contiguous NCHW CUDA tensor of the engine's input type, from a numpy array or any torch tensor."""
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        return tensor.to(self.device, self.dtypes[name], non_blocking=True).contiguous()


def _device_index(device: str) -> int | None:
    """None for the current GPU ("auto", "cuda"), K for "cuda:K"."""
    kind, _, index = device.partition(":")
    if kind == "auto" and not index:
        return None
    if kind == "cuda" and (not index or index.isdigit()):
        return int(index) if index else None
    raise EmoedgeError(f"device {device!r}: the tensorrt backend runs on 'auto' or 'cuda[:K]'")


def _torch_dtype(trt, dtype, name: str, path: Path) -> torch.dtype:  # noqa: ANN001 (tensorrt module, DataType)
    types = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
             trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool}
    if dtype not in types:
        raise EmoedgeError(f"engine {path}: tensor {name!r} has data type {dtype}, which emoedge does not bind")
    return types[dtype]
