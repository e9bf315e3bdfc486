"""ONNX Runtime backend: an emoedge ONNX file on the TensorRT, CUDA or CPU execution provider.

Why an optimisation profile for the TensorRT provider: N (persons) is dynamic, and without min/opt/max shapes the
provider rebuilds its engine whenever N exceeds every N seen so far; with them, and the engine and timing caches
on disk, the engine is built once per machine. The profile bounds N (PERSONS_PROFILE): the backend publishes them
as `min_persons`/`max_persons`, and base.Backend runs more persons in slices (a multi-stream tick of 4 × 9 persons
would otherwise fail inside TensorRT).

Why an engine cache prefix from the model's bytes: the provider names a cached engine after the graph's name, its
inputs and the ONNX Runtime/TensorRT versions, never after its weights (ONNX Runtime issues #6455, #32254), so a
retrained model of the same recipe would load the first model's engine: its scores, and no error. The prefix is a
digest of the serialized graph and the precision that runs; the timing cache, per GPU and not per model, stays
shared (its file name does not use the prefix).

Why precision rules per TensorRT version: with `trt_fp16_enable` or `trt_int8_enable` set the provider builds a
weakly typed network with those builder flags; with neither, a strongly typed one that keeps the graph's own types
(TensorRT 9 on; ONNX Runtime PR #19695; no provider option asks for strong typing). The rules follow emoedge's own
engine build (formats.tensorrt.STRONG_TYPING_FROM): before TensorRT 10.12 (JetPack 6 has 10.3) the FP16 flag lowers
an FP32 graph, and a Q/DQ graph gets INT8 where it quantizes and FP16 elsewhere, which weak typing needs the INT8
flag for; from 10.12, where weak typing is deprecated, and in 11, where it is gone and the flags do nothing, no
flags are set: the graph runs, and is reported, as stored, and FP16 needs an FP16 ONNX.

Why CUDA graphs on the CUDA provider (on by default there, `cuda_graphs`): a call of three ResNets is hundreds of
small kernels, each launched one by one, so on a datacenter GPU a call costs the launches, not the arithmetic
(issue 28). The provider's `enable_cuda_graph` captures a call once and replays it; a graph is fixed to its shapes
and to the addresses of its inputs and outputs, so the backend is `bucketed` (base.Backend pads F and N up to powers
of two) and keeps, per (F, N) bucket, device buffers bound once to an IOBinding and a RunOptions whose `gpu_graph_id`
selects that bucket's graph in the one session (ONNX Runtime >= 1.18, PR #19636). Calls are bounded to GRAPH_FRAMES
x GRAPH_PERSONS (more run in groups and slices): at most 3 x 6 = 18 graphs, fewer than PyTorch's, as ONNX Runtime
keeps every captured graph and its bound buffers for the session's life and offers no memory pool shared between
graphs (PyTorch's torch.cuda.graph_pool_handle). Not on the TensorRT provider: its `trt_cuda_graph_enable` keeps
one graph per session, not one per `gpu_graph_id`. A model whose nodes are not all on the CUDA provider cannot be
captured; "auto" then runs it without graphs and says why in `reason`.

Unverified here: the CUDA-graph code is written against ONNX Runtime's documented API (CUDA execution provider,
"Using CUDA Graphs") on a machine without a GPU; tests/gpu/test_gpu_graphs.py compares it with eager calls on a
CUDA GPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from emoedge.backends.base import Backend, bucket, host_array
from emoedge.card import ModelCard
from emoedge.devices import graphs_wanted, parse_device
from emoedge.errors import EmoedgeError
from emoedge.formats.onnx import card_of, graph_precision, load_onnx
from emoedge.formats.tensorrt import STRONG_TYPING_FROM, import_tensorrt, version_tuple

log = logging.getLogger(__name__)

TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
MAX_THREADS = 8  # more intra-op threads do not speed up one frame's small convolutions; they only contend
PERSONS_PROFILE = (1, 4, 32)  # min/opt/max persons of the TensorRT provider's optimisation profile
FRAMES_PROFILE = (1, 1, 4)  # min/opt/max frames (streams) per call in that profile
GRAPH_FRAMES = 4  # frames per graphed call on the CUDA provider: buckets 1, 2, 4 (see the module docstring)
GRAPH_PERSONS = 32  # persons per graphed call: buckets 1, 2, 4, ..., 32
# What ONNX Runtime says when it refuses `enable_cuda_graph` for a model (inference_session.cc; the wording changed)
GRAPH_REFUSALS = ("CUDA Graph feature", "graph capture feature")
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
PRECISIONS = ("auto", "fp32", "fp16", "int8")
NVINFER_SONAMES = ("libnvinfer.so.10", "libnvinfer.so.11")  # TensorRT's runtime, the majors emoedge supports
PRECISION_FLAGS = {"trt_int8_enable": "INT8", "trt_fp16_enable": "FP16"}  # the provider's builder-flag options
# Weakly typed TensorRT: (stored, requested) -> (precision that runs, provider flags); other pairs run as stored.
WEAK_TYPING = {
    ("fp32", "auto"): ("fp16", ("trt_fp16_enable",)),
    ("fp32", "fp16"): ("fp16", ("trt_fp16_enable",)),
    ("int8", "auto"): ("int8", ("trt_int8_enable", "trt_fp16_enable")),  # FP16 for the layers left unquantized
    ("int8", "int8"): ("int8", ("trt_int8_enable", "trt_fp16_enable")),
}


def default_cache_dir() -> Path:
    """Where the TensorRT provider keeps engines and timing caches (building one takes minutes)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emoedge" / "ort-tensorrt"


class OnnxRuntimeBackend(Backend):
    """One InferenceSession; the card comes from the file's metadata.

    `device`: "auto" (TensorRT, else CUDA, else CPU provider — whichever this onnxruntime build has), "cpu",
    "cuda[:K]" or "tensorrt[:K]". `precision` "auto" runs the graph as it is, except that the TensorRT provider
    on TensorRT before 10.12 builds FP16 engines from an FP32 graph; "fp32" keeps it FP32 there. `cuda_graphs`
    "auto"/"on" replay one CUDA graph per shape bucket on the CUDA provider (see the module docstring).
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "auto",
        precision: str = "auto",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        cuda_graphs: str = "auto",
    ) -> None:
        import onnxruntime as ort

        model = load_onnx(path)
        self.card = card_of(model, path)
        # Files exported before the `frame` input take one frame per call (base.Backend runs more in groups).
        self.has_frame = "frame" in {i.name for i in model.graph.input}
        self.max_frames = None if self.has_frame else 1
        stored, graph = graph_precision(model), model.SerializeToString()
        available = ort.get_available_providers()
        provider, device_id, why = _choose_provider(device, available, gpu=device != "auto" or cuda_visible())
        graphs = wants_graphs(cuda_graphs, provider)  # before the session loads: "on" where it cannot is one line
        trt = tensorrt_version() if provider == TENSORRT else None
        self.device = "cpu" if provider == CPU else f"cuda:{device_id}"
        self.precision, options = _provider_options(provider, device_id, precision, stored, path, trt)
        if provider == TENSORRT:
            cache = Path(cache_dir) if cache_dir else default_cache_dir()
            cache.mkdir(parents=True, exist_ok=True)
            prefix = engine_cache_prefix(graph, self.precision)
            options.update(tensorrt_options(self.card, has_frame=self.has_frame, cache_dir=cache, prefix=prefix))
            self.max_frames = FRAMES_PROFILE[-1] if self.has_frame else 1

        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's business
        self.threads = threads or min(len(os.sched_getaffinity(0)), MAX_THREADS)
        session_options.intra_op_num_threads = self.threads
        eager = session_providers(provider, options, available, device_id)
        graphed = session_providers(provider, cuda_graph_options(options), available, device_id) if graphs else None
        self.session, refused = _open_session(graph, session_options, path, eager, graphed, cuda_graphs)
        running = self.session.get_providers()[0]
        if running != provider:  # onnxruntime-gpu falls back silently when CUDA/TensorRT libraries do not load
            if device != "auto":
                raise EmoedgeError(
                    f"device {device!r}: onnxruntime could not start {provider} (its CUDA/TensorRT libraries did "
                    "not load); use device 'cpu'"
                )
            provider, why = running, f"{provider} could not start"
            self.device = "cpu" if running == CPU else f"cuda:{device_id}"
            self.precision, _ = _provider_options(running, device_id, precision, stored, path)
            graphs = wants_graphs(cuda_graphs, running) and graphs  # "on" is refused where the fallback cannot
        self.min_persons, self.max_persons = persons_bounds(running)
        self.input_types = {i.name: NUMPY_TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._graphs: _Graphs | None = None
        if graphs and refused is None:
            self.bucketed, self.max_persons = True, GRAPH_PERSONS
            self.max_frames = GRAPH_FRAMES if self.has_frame else 1
            self._graphs = _Graphs(self.session, device_id, self._output_specs(), graph_ids(self.max_frames), path,
                                   strict=cuda_graphs == "on")  # fmt: skip
        note = {
            TENSORRT: tensorrt_note(trt, options),
            CPU: f"{self.threads} intra-op threads",
            CUDA: cuda_note(self._graphs is not None, refused),
        }.get(running)
        self.reason = f"onnxruntime {provider} ({why}), {self.precision}" + (f", {note}" if note else "")

    @property
    def graph_shapes(self) -> list[tuple[int, int]]:
        """(F, N) of every bucket whose CUDA graph has been captured so far (none without graphs)."""
        return self._graphs.captured if self._graphs is not None else []

    def _output_specs(self) -> dict[str, tuple[type, tuple[int, ...]]]:
        """Each output's numpy type and its shape after the persons axis, for buffers bound before any call."""
        tails = {name: value.shape[1:] for name, value in self.empty_outputs().items()}
        return {o.name: (NUMPY_TYPES.get(o.type, np.float32), tails[o.name]) for o in self.session.get_outputs()}

    @property
    def input_device(self) -> str:
        """Host memory whatever the provider: `session.run` (with CUDA graphs, `update_inplace` into the bound
        buffers) takes numpy arrays and copies them to the device itself."""
        return "cpu"

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {
            "image": host_array(image, self.input_types["image"]),
            "body": host_array(body, self.input_types["body"]),
        }
        if self.has_frame:
            feeds["frame"] = frame
        results = self._graphs.run(feeds) if self._graphs is not None else None
        if results is None:  # no graphs, or a capture failed under cuda_graphs "auto": this call without a graph
            options = self._graphs.without_graph if self._graphs is not None else None
            results = self.session.run(self.outputs, feeds, options)
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.outputs, results)}


def cuda_visible() -> bool:
    """Whether a CUDA GPU is there: onnxruntime-gpu lists its CUDA and TensorRT providers on machines without one."""
    import torch

    return torch.cuda.is_available()


def engine_cache_prefix(graph: bytes, precision: str) -> str:
    """The TensorRT provider's `trt_engine_cache_prefix` for a serialized graph run in `precision`: its engines are
    found again only for these very bytes (weights included). Letters, digits and '_' only: it starts file names."""
    return f"emoedge_{hashlib.sha256(graph).hexdigest()[:16]}_{precision}"


def tensorrt_options(card: ModelCard, *, has_frame: bool, cache_dir: Path, prefix: str) -> dict[str, str]:
    """Engine caches under `prefix` (see engine_cache_prefix), the shared timing cache and the optimisation profile
    over F and N for the TensorRT provider."""
    image = "x".join(str(s) for s in (3, *card.image_size))
    body = "x".join(str(s) for s in (3, *card.body_size))
    frames = FRAMES_PROFILE if has_frame else (1, 1, 1)
    shapes = [
        f"image:{f}x{image},body:{n}x{body}" + (f",frame:{n}" if has_frame else "")
        for f, n in zip(frames, PERSONS_PROFILE)
    ]
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_engine_cache_prefix": prefix,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": shapes[0],
        "trt_profile_opt_shapes": shapes[1],
        "trt_profile_max_shapes": shapes[2],
    }


def persons_bounds(provider: str) -> tuple[int, int | None]:
    """(min, max) persons per model call: the TensorRT provider's profile bounds N; CPU and CUDA take any N."""
    return (PERSONS_PROFILE[0], PERSONS_PROFILE[-1]) if provider == TENSORRT else (1, None)


def wants_graphs(cuda_graphs: str, provider: str) -> bool:
    """Whether CUDA graphs are captured on `provider` (the rule of devices.graphs_wanted): on the CUDA provider only.
    The TensorRT provider's `trt_cuda_graph_enable` keeps one graph per session, not one per `gpu_graph_id` (its
    CaptureBegin resets the one graph it holds), so "auto" runs it without and "on" is refused in one line."""
    if cuda_graphs == "on" and provider == TENSORRT:
        raise EmoedgeError(
            "cuda_graphs 'on': emoedge captures CUDA graphs on ONNX Runtime's CUDA provider, not its TensorRT "
            "provider (one graph per session there, not one per shape bucket); use device 'cuda'"
        )
    return graphs_wanted(cuda_graphs, provider == CUDA, f"ONNX Runtime runs this model on its {provider}")


def cuda_graph_options(options: dict[str, str]) -> dict[str, str]:
    """The CUDA provider's `options` with graph capture on (its `enable_cuda_graph`, "1" as documented)."""
    return options | {"enable_cuda_graph": "1"}


def graph_ids(max_frames: int = GRAPH_FRAMES, max_persons: int = GRAPH_PERSONS) -> dict[tuple[int, int], int]:
    """The `gpu_graph_id` run option of every (F, N) bucket a graphed call can have, numbered from 1 (ONNX Runtime
    reserves 0 for its default graph and -1 for "no graph"); fixed by the bounds, so a bucket keeps its id."""
    frames = sorted({bucket(f, max_frames) for f in range(1, max_frames + 1)})
    persons = sorted({bucket(n, max_persons) for n in range(1, max_persons + 1)})
    return {shape: i for i, shape in enumerate(itertools.product(frames, persons), start=1)}


def graph_refusal(message: str) -> str | None:
    """ONNX Runtime's reason for refusing `enable_cuda_graph` when it creates a session ("This session cannot use
    the CUDA Graph feature as requested by the user as all compute graph nodes have not been partitioned to the
    CUDA EP." → its part after "the user"), or None where `message` is another error."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    if not any(words in line for words in GRAPH_REFUSALS):
        return None
    reason = line.partition("requested by the user")[2] or line
    return reason.strip().removeprefix("as ").strip().rstrip(".")[:160]


def cuda_note(graphs: bool, refused: str | None) -> str:
    """What `reason` says of the CUDA provider's way of running: graphs per bucket, ONNX Runtime's refusal of them
    (`refused`), or eager calls (cuda_graphs "off", or a TensorRT provider that fell back to the CUDA provider)."""
    if graphs:
        return f"CUDA graphs per shape bucket (<= {GRAPH_FRAMES} frames x {GRAPH_PERSONS} persons a call)"
    return f"CUDA graphs off: ONNX Runtime refused them ({refused})" if refused else "eager"


def session_providers(provider: str, options: dict[str, str], available: list[str], device_id: int) -> list[Any]:
    """InferenceSession's providers: ONNX Runtime gives a node the first listed provider that supports it, so the
    chain falls back TensorRT → CUDA → CPU; `options` go to `provider`, the others get the device only."""
    chain = {TENSORRT: (TENSORRT, CUDA), CUDA: (CUDA,), CPU: ()}[provider]
    return [(p, options if p == provider else {"device_id": str(device_id)}) for p in chain if p in available] + [CPU]


def _open_session(
    graph: bytes, session_options: Any, path: Any, eager: list[Any], graphed: list[Any] | None, cuda_graphs: str
) -> tuple[Any, str | None]:
    """(InferenceSession, ONNX Runtime's refusal of CUDA graphs or None). With `graphed` providers the session is
    tried with graphs first: a refusal (some node not on the CUDA provider, control flow) is one line under
    cuda_graphs "on", else the session is made from `eager` and the refusal returned for `reason`."""
    import onnxruntime as ort

    refused = None
    if graphed is not None:
        try:
            return ort.InferenceSession(graph, session_options, providers=graphed), None
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, …)
            refused = graph_refusal(str(exc))
            if refused is None:
                raise _cannot_load(path, exc) from None
        if cuda_graphs == "on":
            raise EmoedgeError(f"cuda_graphs 'on': ONNX Runtime cannot capture CUDA graphs of {path} ({refused}); "
                               "use 'auto' or 'off'")  # fmt: skip
    try:
        return ort.InferenceSession(graph, session_options, providers=eager), refused
    except Exception as exc:
        raise _cannot_load(path, exc) from None


def _cannot_load(path: Any, exc: Exception) -> EmoedgeError:
    return EmoedgeError(f"ONNX model {path}: ONNX Runtime cannot load it ({_first_line(exc)})")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


class _Bound(NamedTuple):
    """One bucket's graph inputs and outputs in device memory, bound once, and the run options naming its graph."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    binding: Any
    options: Any


class _Graphs:
    """One CUDA graph per (F, N) bucket in one session, after ONNX Runtime's recipe (CUDA execution provider,
    "Using CUDA Graphs"): device OrtValues of fixed shape and type bound once to an IOBinding, refreshed with
    `update_inplace` and never rebound (a graph reads and writes the addresses it was captured with), and a
    RunOptions whose `gpu_graph_id` selects the bucket's graph (graph_ids). ONNX Runtime captures at a bucket's first
    `run_with_iobinding`: that Run repeats itself over the regular runs the provider needs before a capture
    (min_num_runs_before_cuda_graph_capture_), captures and replays, so one call returns outputs of a captured graph.

    ONNX Runtime runs graphs one call at a time and keeps them in the calling thread's context (a call from another
    thread captures its bucket again there), and a capture uses cudaStreamCaptureModeGlobal, which another thread's
    CUDA work during it can break: calls are serialised here, and `warm` captures every bucket of a run before the
    run's other threads (the detector's) start; a bucket first met later is captured while they may run.

    Unverified here: written against ONNX Runtime's documented API on a machine without a GPU; tests/gpu/
    test_gpu_graphs.py compares it with eager calls on a CUDA GPU.
    """

    def __init__(
        self, session: Any, device_id: int, outputs: dict[str, tuple[type, tuple[int, ...]]],
        ids: dict[tuple[int, int], int], path: Any, *, strict: bool,
    ) -> None:  # fmt: skip
        import onnxruntime as ort

        self.session, self.device_id, self.outputs, self.ids, self.path = session, device_id, outputs, ids, path
        self.strict = strict  # cuda_graphs "on": a failed capture is an error; "auto": graphs stop, calls go on
        self.failed: str | None = None
        self.bound: dict[tuple[int, int], _Bound] = {}
        self.lock = threading.Lock()  # ONNX Runtime runs graphs one call at a time; the buffers are shared
        self.without_graph = ort.RunOptions()
        self.without_graph.add_run_config_entry("gpu_graph_id", "-1")  # ONNX Runtime: no capture, no replay

    @property
    def captured(self) -> list[tuple[int, int]]:
        """(F, N) of the buckets whose first call, the one that captures, has run."""
        return sorted(self.bound)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray] | None:
        """The outputs (in `outputs` order) for `feeds` at a bucket's shapes: copied in, replayed, copied out; None
        once a capture has failed under cuda_graphs "auto" (the caller runs the call without a graph)."""
        shape = (int(feeds["image"].shape[0]), int(feeds["body"].shape[0]))
        with self.lock:
            if self.failed is not None:
                return None
            bound = self.bound.get(shape) or self._bind(shape, feeds)
            for name, value in feeds.items():
                bound.inputs[name].update_inplace(value)
            try:
                self.session.run_with_iobinding(bound.binding, bound.options)
            except Exception as exc:  # onnxruntime's own exception types
                if shape in self.bound:
                    raise
                if self.strict:
                    raise EmoedgeError(f"cuda_graphs 'on': ONNX Runtime could not capture the CUDA graph of {self.path} "
                                       f"at {shape[0]} frame(s) x {shape[1]} person(s) ({_first_line(exc)}); use "
                                       "--cuda-graphs auto or off") from None  # fmt: skip
                log.warning("CUDA graphs off from now on, %s runs without them: capturing %s failed (%s)", self.path,
                            shape, _first_line(exc))  # fmt: skip
                self.failed = _first_line(exc)
                return None
            self.bound[shape] = bound
            return [bound.outputs[name].numpy() for name in self.outputs]

    def _bind(self, shape: tuple[int, int], feeds: dict[str, np.ndarray]) -> _Bound:
        """Device buffers shaped and typed like `feeds` and the outputs at N = shape[1], bound, and the run options
        carrying the bucket's graph id."""
        import onnxruntime as ort

        def device(dims: tuple[int, ...], dtype: Any) -> Any:
            return ort.OrtValue.ortvalue_from_shape_and_type(list(dims), dtype, "cuda", self.device_id)

        inputs = {name: device(value.shape, value.dtype.type) for name, value in feeds.items()}
        outputs = {name: device((shape[1], *tail), dtype) for name, (dtype, tail) in self.outputs.items()}
        binding = self.session.io_binding()
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, value)
        for name, value in outputs.items():
            binding.bind_ortvalue_output(name, value)
        options = ort.RunOptions()
        options.add_run_config_entry("gpu_graph_id", str(self.ids[shape]))
        return _Bound(inputs, outputs, binding, options)


def tensorrt_version() -> str | None:
    """The TensorRT version the TensorRT provider will load, or None where it cannot be told.

    The `tensorrt` module's when it imports (importing it loads its libnvinfer, which the provider then shares),
    else libnvinfer's own `getInferLibVersion()`, found by the same library search as the provider's.
    """
    try:
        return str(import_tensorrt().__version__)
    except EmoedgeError:
        pass
    for soname in NVINFER_SONAMES:
        try:
            code = ctypes.CDLL(soname).getInferLibVersion()
        except (OSError, AttributeError):  # not installed, or a library without the function
            continue
        return infer_lib_version(int(code))
    return None


def infer_lib_version(code: int) -> str:
    """'MAJOR.MINOR.PATCH' from getInferLibVersion(), which TensorRT 10 and later encode as
    major * 10000 + minor * 100 + patch (NV_TENSORRT_VERSION in NvInferRuntimeBase.h)."""
    return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


def strongly_typed(tensorrt: str | None) -> bool:
    """Whether the TensorRT provider runs a graph in the precision it stores: TensorRT 10.12 and later, and a
    version that cannot be told (see _provider_options)."""
    return tensorrt is None or version_tuple(tensorrt) >= STRONG_TYPING_FROM


def tensorrt_note(tensorrt: str | None, options: dict[str, str]) -> str:
    """What `reason` says of the TensorRT provider: its TensorRT and the typing its `options` ask for."""
    flags = [PRECISION_FLAGS[name] for name in options if name in PRECISION_FLAGS]
    version = f"TensorRT {tensorrt}" if tensorrt else "TensorRT of unknown version (no tensorrt module or libnvinfer)"
    return f"{version}: " + (f"weakly typed, {'+'.join(flags)} flags" if flags else "strongly typed, as stored")


def _choose_provider(device: str, available: list[str], *, gpu: bool = True) -> tuple[str, int, str]:
    """(provider, device id, why) for a device string, checked against this onnxruntime build's providers.

    `gpu` False (no CUDA GPU visible) makes "auto" choose the CPU provider whatever the build offers.
    """
    wanted = parse_device(device)
    device_id = wanted.index or 0
    if wanted.kind == "auto":
        if not gpu:
            return CPU, 0, "no CUDA GPU visible"
        for provider in (TENSORRT, CUDA):
            if provider in available:
                return provider, device_id, "the fastest provider in this onnxruntime build"
        return CPU, 0, "no CUDA or TensorRT provider in this onnxruntime build"
    provider = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}[wanted.kind]
    if provider not in available:
        raise EmoedgeError(
            f"device {device!r}: this onnxruntime build has no {provider} (it has {', '.join(available)}); "
            "install onnxruntime-gpu for CUDA and TensorRT"
        )
    return provider, device_id, "device requested"


def _provider_options(
    provider: str, device_id: int, precision: str, stored: str, path: Any, tensorrt: str | None = None
) -> tuple[str, dict[str, str]]:
    """(precision that will run, provider options) for a graph that stores `stored` ('fp32', 'fp16', 'int8').

    Only the TensorRT provider on weakly typed TensorRT (`tensorrt` before 10.12) takes precision flags
    (WEAK_TYPING); everywhere else the graph runs as stored, without flags, so the TensorRT provider builds a
    strongly typed network. A TensorRT version that cannot be told (`tensorrt` None) gets those strongly typed
    rules: without flags every TensorRT from 9 on keeps the graph's types, so the precision reported is the one
    that runs; flags are documented only where weak typing exists, which an unknown version does not promise.
    """
    if precision not in PRECISIONS:
        raise EmoedgeError(f"precision {precision!r}: the onnxruntime backend takes 'auto', 'fp32', 'fp16' or 'int8'")
    options = {} if provider == CPU else {"device_id": str(device_id)}
    if provider == TENSORRT and not strongly_typed(tensorrt) and (stored, precision) in WEAK_TYPING:
        runs, flags = WEAK_TYPING[stored, precision]
        return runs, options | dict.fromkeys(flags, "True")
    if precision not in ("auto", stored):
        runner = f"{provider} on TensorRT {tensorrt or 'of unknown version'}" if provider == TENSORRT else provider
        raise EmoedgeError(
            f"precision {precision!r}: {path} is a {stored} graph and {runner} runs it as it is; make a "
            f"{precision} ONNX with `emoedge export precision`"
            + (" or use device 'tensorrt' for FP16" if precision == "fp16" and provider != TENSORRT else "")
        )
    return stored, options
