"""Triton backend: a model served by Triton Inference Server (`grpc://host:8001/NAME`, `http://host:8000/NAME`).

Why a backend and not a separate client: an edge box that sends its persons to a GPU server runs the same pipeline,
tracking, smoothing and events as one that runs the model itself; only `_infer` goes over the network. The card
comes from the server (the model configuration's `parameters`, or the `card` output of `emoedge serve`), so the
client needs no model file. Inputs are preprocessed on the client: the server receives the tensors the model takes.
An engine's optimisation profile comes from the same parameters (emoedge.formats.triton): base.Backend slices and pads
persons to it and groups frames by its maximum, and fewer frames than its minimum (a DLA engine's fixed F) are padded
here with blank frames no person points at.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from emoedge.backends.base import Backend, host_array
from emoedge.card import ModelCard
from emoedge.devices import parse_device
from emoedge.errors import EmoedgeError, ModelUnavailable
from emoedge.formats.triton import CARD_OUTPUT, MODEL_NAME, bounds_from_parameters, card_from_parameters

URL = re.compile(rf"(?P<scheme>grpc|http)://(?P<address>[^/@\s]+:\d+)/(?P<name>{MODEL_NAME.pattern})/?")
TIMEOUT_S = 10.0  # connecting and each request: a server that does not answer in this is down for the pipeline
NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64}
# gRPC status codes of a server that is not there now (restarting, unreachable, overloaded, its model reloading), as
# tritonclient's InferenceServerException.status() gives them; other codes (a refused shape) are the request's fault.
TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED",
             "StatusCode.RESOURCE_EXHAUSTED", "StatusCode.NOT_FOUND", "503", "404", "429"}  # fmt: skip


class TritonBackend(Backend):
    """A client of one model on one Triton server; `device` and `precision` are the server's business."""

    name = "triton"

    def __init__(self, url: str, *, device: str = "auto", precision: str = "auto") -> None:
        match = URL.fullmatch(url)
        if match is None:
            raise EmoedgeError(f"model {url}: expected grpc://HOST:PORT/NAME or http://HOST:PORT/NAME (no user:pass@)")
        if parse_device(device).kind != "auto" or precision != "auto":
            raise EmoedgeError(f"model {url}: device and precision of a served model are set on the server")
        self.url, self.model_name, self.grpc = url, match["name"], match["scheme"] == "grpc"
        self.address = match["address"]
        self.client = _client(self.grpc, self.address)
        self._lost = False  # the last request found the server gone: the next one opens a new connection
        try:
            live = self.client.is_server_live(**_timeout(self.grpc))
        except Exception as exc:  # tritonclient raises its own, gevent's and socket errors for a server not there
            raise EmoedgeError(f"model {url}: Triton server not reachable ({_first_line(exc)})") from None
        if not live or not self.client.is_model_ready(self.model_name, **_timeout(self.grpc)):
            raise EmoedgeError(f"model {url}: no model {self.model_name!r} ready on that server{self._served()}")
        config = self.client.get_model_config(self.model_name, **({"as_json": True} if self.grpc else {}))
        config = config.get("config", config)
        self.inputs = {i["name"]: NUMPY.get(i["data_type"], np.float32) for i in config.get("input", [])}
        if not {"image", "body"} <= self.inputs.keys():
            raise EmoedgeError(
                f"model {url}: inputs {sorted(self.inputs)}, not an emoedge model's (image, body, frame)"
            )
        self.outputs = [o["name"] for o in config.get("output", []) if o["name"] != CARD_OUTPUT]
        self.card = card_from_parameters(config.get("parameters", {}), f"model {url}") or self._served_card(config)
        self.has_frame = "frame" in self.inputs
        bounds = bounds_from_parameters(config.get("parameters", {}), f"model {url}")
        self.min_persons, self.max_persons = bounds.min_persons, bounds.max_persons
        self.min_frames, self.max_frames = (bounds.min_frames, bounds.max_frames) if self.has_frame else (1, 1)
        self.device, self.precision = "remote", "server"
        where = config.get("platform") or config.get("backend") or "?"
        self.reason = f"Triton {match['scheme']} {match['address']}, model {self.model_name!r} ({where})"

    @property
    def input_device(self) -> str:
        """Host arrays: they are serialised into the request."""
        return "cpu"

    def _infer(self, image: Any, body: Any, frame: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"image": host_array(image, self.inputs["image"]), "body": host_array(body, self.inputs["body"])}
        if self.has_frame:
            feeds["frame"] = frame
        result = self._request(feeds, self.outputs)
        return {name: np.asarray(result.as_numpy(name), dtype=np.float32) for name in self.outputs}

    def _request(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> Any:
        module = _module(self.grpc)
        inputs = []
        for name, value in feeds.items():
            tensor = module.InferInput(name, list(value.shape), _triton_type(value))
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        requested = [module.InferRequestedOutput(name) for name in outputs]
        if self._lost:  # a fresh channel: gRPC's own reconnection backs off for up to two minutes
            self.client.close()
            self.client = _client(self.grpc, self.address)
        try:
            answer = self.client.infer(self.model_name, inputs, outputs=requested, **_timeout(self.grpc))
        except Exception as exc:  # the server's own message (a refused shape, a model error) or a lost connection
            self._lost = _transient(exc)
            error = ModelUnavailable if self._lost else EmoedgeError
            raise error(f"model {self.url}: Triton request failed ({_first_line(exc)})") from None
        self._lost = False
        return answer

    def _served_card(self, config: dict[str, Any]) -> ModelCard:
        """The card from the `card` output of a model `emoedge serve` serves: one request of one blank person
        (PyTriton cannot pass empty tensors to the model)."""
        if CARD_OUTPUT not in {o["name"] for o in config.get("output", [])}:
            raise EmoedgeError(f"model {self.url}: not an emoedge model (no {CARD_OUTPUT!r} parameter or output)")
        dims = {i["name"]: [int(d) for d in i["dims"]] for i in config["input"]}
        feeds = {
            "image": np.zeros([1, *dims["image"][1:]], self.inputs["image"]),
            "body": np.zeros([1, *dims["body"][1:]], self.inputs["body"]),
        }
        if "frame" in dims:
            feeds["frame"] = np.zeros(1, np.int64)
        text = self._request(feeds, [CARD_OUTPUT]).as_numpy(CARD_OUTPUT).reshape(-1)[0]
        try:
            return ModelCard.from_dict(json.loads(text))
        except (json.JSONDecodeError, TypeError) as exc:
            raise EmoedgeError(f"model {self.url}: its {CARD_OUTPUT!r} output is not a model card ({exc})") from None

    def _served(self) -> str:
        """ " (it serves [...])" from the repository index; "" where the server keeps the index to itself (PyTriton
        restricts that endpoint to its own token)."""
        try:
            index = self.client.get_model_repository_index(**({"as_json": True} if self.grpc else {}))
        except Exception:  # a restricted or failing endpoint: the error needs no list
            return ""
        models = index.get("models", []) if isinstance(index, dict) else index
        return f" (it serves {sorted(m['name'] for m in models if m.get('state', 'READY') == 'READY')})"


def _module(grpc: bool) -> Any:
    if grpc:
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module
    return module


def _client(grpc: bool, address: str) -> Any:
    module = _module(grpc)
    if grpc:
        return module.InferenceServerClient(url=address)
    return module.InferenceServerClient(url=address, connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S)


def _timeout(grpc: bool) -> dict[str, float]:
    """gRPC takes a per-request deadline; the HTTP client's timeouts were set when it was made."""
    return {"client_timeout": TIMEOUT_S} if grpc else {}


def _triton_type(value: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(value.dtype)


def _transient(exc: Exception) -> bool:
    """Whether a failed request says the server is not there now, rather than that the request was wrong."""
    status = getattr(exc, "status", None)
    if callable(status):  # tritonclient's InferenceServerException
        return str(status()) in TRANSIENT
    return isinstance(exc, OSError)  # refused, reset, unreachable, timed out: the HTTP client's socket errors


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
