"""`emoedge serve` for the tests: started on free (or given) ports, waited for, stopped (or killed) — and the way
a test kills a server with Triton's own processes, as a crash or a host's restart would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]
from ports import free_ports  # type: ignore[import-not-found]

NUMPY_2 = int(np.__version__.split(".")[0]) >= 2
START_TIMEOUT_S = 180  # the first start copies Triton's binaries into PyTriton's workspace and loads the model


@dataclass
class Server:
    """A running `emoedge serve` process and its URLs."""

    process: subprocess.Popen
    grpc: str
    http: str
    log: Path
    output: list[str]


@contextlib.contextmanager
def serving(model: Path, folder: Path, *options: str, ports: list[int] | None = None) -> Iterator[Server]:
    """`emoedge serve MODEL --name emo` on `ports` (grpc, http, metrics; default: free ones); stopped with SIGINT on
    leaving, which must end it with status 130 and "emoedge: interrupted" (unless the test killed it)."""
    pytest.importorskip("pytriton", reason="PyTriton is not installed (the `serve` extra: make setup SET=serve)")
    if NUMPY_2:
        pytest.skip("numpy 2 is installed: PyTriton's Python backend needs numpy < 2 (make setup SET=serve)")
    grpc_port, http_port, metrics_port = ports or free_ports(3)
    log = folder / "triton.log"
    argv = [sys.executable, "-m", "emoedge", "serve", str(model), "--name", "emo", "--grpc-port", str(grpc_port),
            "--http-port", str(http_port), "--metrics-port", str(metrics_port), "--log", str(log), *options]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            output.append(line)
            if line.startswith("serving "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT_S):
            pytest.fail(f"emoedge serve did not come up in {START_TIMEOUT_S} s: {''.join(output)[-3000:]}")
        yield Server(process, f"grpc://127.0.0.1:{grpc_port}/emo", f"http://127.0.0.1:{http_port}/emo", log, output)
    finally:
        killed = process.poll() == -signal.SIGKILL  # by the test, Triton's own processes with it
        if not killed:
            process.send_signal(signal.SIGINT)
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    if not killed:
        assert status == 130, "".join(output)[-3000:]
        assert output[-1].strip() == "emoedge: interrupted", output[-3:]


def kill(server: Server) -> None:
    """SIGKILL the server and every process it started (Triton's server and its Python backend's stubs), and remove
    the shared memory they leave behind (as systemd's RemoveIPC does for a crashed service): /dev/shm is 64 MB in a
    container, and each killed PyTriton leaves its segments there."""
    parent = psutil.Process(server.process.pid)
    tree = [*parent.children(recursive=True), parent]
    shared: set[str] = set()
    for process in tree:
        with contextlib.suppress(psutil.Error):
            shared |= {m.path for m in process.memory_maps() if m.path.startswith("/dev/shm/")}
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    server.process.wait(30)
    for path in shared:
        with contextlib.suppress(OSError):
            os.unlink(path)
