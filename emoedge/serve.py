"""`serve`: any emoedge model file behind a real Triton Inference Server, for machines without a Triton container.

Why PyTriton: its wheel bundles Triton's server binary with the Python backend, so `pip install 'emoedge[serve]'` is
enough to serve a checkpoint, ONNX file or engine over Triton's gRPC and HTTP protocols (and Prometheus metrics),
with the model running in this process on emoedge's own backends. Clients are the `triton` backend
(`emoedge run --model grpc://HOST:8001/NAME`) or any Triton client: the tensors are those of `emoedge export triton`.

Two things the bundled server needs, checked here so that they fail as one line rather than as wrong answers:
- numpy < 2. The Python-backend stub is built against numpy 1.x; under numpy 2 every output arrives empty.
- the libpython of this interpreter. The stub links `libpython3.X.so.1.0` and takes the standard library of this
  Python; where the dynamic linker finds another build of that library first (a pyenv or conda Python on a system
  that has its own libpython3.X), the two disagree — with Python 3.11.7 over Debian's 3.11.2 the stub fails in
  multiprocessing's resource tracker: `'_thread.RLock' object has no attribute '_recursion_count'`. The server is
  therefore started with this interpreter's library folder first on LD_LIBRARY_PATH.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoedge.backends import Backend, load_model
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError
from emoedge.fileio import keep_outputs, output_file
from emoedge.formats.triton import CARD_OUTPUT, TensorSpec, check_name, describe

NUMPY_TYPES = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64}
WATCH_S = 1.0  # how often the serving loop checks that Triton is still alive


@dataclass(frozen=True)
class Endpoints:
    """Where the server listens."""

    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002

    def urls(self, name: str) -> str:
        return f"grpc://{self.host}:{self.grpc_port}/{name} and http://{self.host}:{self.http_port}/{name}"


def _announce(line: str) -> None:
    print(line, flush=True)  # at once, also when stdout is a pipe (a service manager's journal, a test)


def serve(
    model: str | Path,
    *,
    name: str = "emoedge",
    endpoints: Endpoints = Endpoints(),
    device: str = "auto",
    precision: str = "auto",
    instances: int = 1,
    log: Path | None = None,
    ready: Callable[[str], None] = _announce,
) -> None:
    """Serve `model` as `name` until SIGINT/SIGTERM (or until the server dies: an EmoedgeError).

    Triton's own log goes to `log` (default: triton-NAME.log in emoedge's cache folder); `ready` receives one line
    once the server answers, naming the model, its URLs and the log. `instances` model instances answer requests
    side by side, each with the model loaded once more.
    """
    check_name(name)
    if instances < 1:
        raise EmoedgeError(f"instances {instances}: expected at least 1 model instance")
    if sys.version_info >= (3, 13):
        raise EmoedgeError(
            "emoedge serve needs PyTriton, which needs numpy < 2: neither has a wheel for Python "
            f"{sys.version_info.major}.{sys.version_info.minor}; use Python 3.10 to 3.12 (make setup SET=serve)"
        )
    _check_numpy()
    try:
        from pytriton.model_config import ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ModuleNotFoundError:
        raise EmoedgeError(
            "emoedge serve needs PyTriton: pip install 'emoedge[serve]' (Linux, x86-64 or arm64, Python 3.10 to 3.12)"
        ) from None
    _check_ports(endpoints)
    log = output_file(log or default_log(name), "Triton log")
    described = describe(model)
    # One backend per instance: a TensorRT execution context (and its bound output buffers) serves one call at a time.
    backends = [load_model(model, device=device, precision=precision) for _ in range(instances)]
    backend = backends[0]
    card = np.array([backend.card.to_json().encode()], dtype=np.bytes_)

    config = TritonConfig(
        http_address=endpoints.host, http_port=endpoints.http_port, grpc_address=endpoints.host,
        grpc_port=endpoints.grpc_port, metrics_port=endpoints.metrics_port, log_file=log,
        allow_gpu_metrics=parse_device(backend.device).kind == "cuda",  # else DCGM prints that it found no GPU
    )  # fmt: skip
    logging.getLogger("pytriton").setLevel(logging.WARNING)
    keep_outputs()  # Triton's log: the reason it did not start, should it not
    with _this_libpython_first(), Triton(config=config) as triton:
        triton.bind(
            model_name=name,
            infer_func=[_answering_with(one, card) for one in backends],
            inputs=[_tensor(spec) for spec in described.inputs],
            outputs=[
                *(_tensor(spec) for spec in described.outputs),
                Tensor(name=CARD_OUTPUT, dtype=np.bytes_, shape=(1,)),
            ],
            config=ModelConfig(batching=False),
            strict=True,
        )
        try:
            triton.run()
        except Exception as exc:  # PyTriton's own errors when the server or the model does not come up
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise EmoedgeError(f"emoedge serve: Triton did not start ({reason}); its log: {log}") from None
        copies = f", {instances} instances" if instances > 1 else ""
        ready(
            f"serving {model} ({backend.reason}{copies}) as {endpoints.urls(name)}; Triton's log: {log}; Ctrl-C stops"
        )
        while triton.is_alive():  # SIGINT/SIGTERM interrupt the sleep as a KeyboardInterrupt: `with` stops Triton
            time.sleep(WATCH_S)
        raise EmoedgeError(f"emoedge serve: the Triton server stopped (its log: {log})")


def _answering_with(backend: Backend, card: np.ndarray) -> Callable[[list[Any]], list[dict[str, np.ndarray]]]:
    """The infer function of one model instance: PyTriton hands it the requests Triton queued for that instance."""

    def infer(requests: list[Any]) -> list[dict[str, np.ndarray]]:
        """One answer per request (no batching: emoedge.formats.triton); the card only where it was asked."""
        answers = []
        for request in requests:
            out = backend.infer(request["image"], request["body"], request.data.get("frame"))
            if CARD_OUTPUT in (request.requested_output_names or ()):
                out[CARD_OUTPUT] = card
            answers.append(out)
        return answers

    return infer


def _tensor(spec: TensorSpec) -> Any:
    from pytriton.model_config import Tensor

    return Tensor(name=spec.name, dtype=NUMPY_TYPES[spec.dtype], shape=spec.dims)


def default_log(name: str) -> Path:
    """Where Triton's log goes unless told: it prints a line per model event, which is no console output."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emoedge" / f"triton-{name}.log"


def _check_numpy() -> None:
    if int(np.__version__.split(".")[0]) >= 2:
        raise EmoedgeError(
            f"emoedge serve: numpy {np.__version__} is installed, but PyTriton's bundled Python backend is built "
            "against numpy 1.x (its outputs arrive empty under numpy 2); install emoedge[serve] in an environment of "
            "its own, where pip chooses numpy < 2 (README, 'Serving with Triton')"
        )


def _check_ports(endpoints: Endpoints) -> None:
    """A port already taken is one line before the server starts, not a server that dies while starting."""
    for what, port in (
        ("grpc", endpoints.grpc_port),
        ("http", endpoints.http_port),
        ("metrics", endpoints.metrics_port),
    ):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((endpoints.host, port))
            except OSError as exc:
                raise EmoedgeError(
                    f"{what} port {port} on {endpoints.host}: cannot listen there ({exc.strerror})"
                ) from None


@contextlib.contextmanager
def _this_libpython_first() -> Iterator[None]:
    """LD_LIBRARY_PATH with this interpreter's library folder first while the server starts (module docstring)."""
    folder = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("INSTSONAME")
    before = os.environ.get("LD_LIBRARY_PATH")
    if folder and library and (Path(folder) / library).is_file():
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (folder, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = before
