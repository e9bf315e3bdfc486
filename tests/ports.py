"""Free TCP ports on 127.0.0.1 for the servers tests start (and for addresses where nothing must answer).

Why below the ephemeral range: a test stops and restarts its servers (broker, cameras, model server) on the same
port, and while one is down every client connection the machine opens takes a source port from the ephemeral range
(`ip_local_port_range`). A port given out from that range can be taken that way in the meantime, and the restarted
server then cannot bind it. Ports below the range are never handed to a connecting socket.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

SPAN = 12_000  # how far below the ephemeral range ports are drawn from


def _first_ephemeral() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_ports(count: int) -> list[int]:
    """`count` distinct ports below the ephemeral range that nothing uses now: bound together (no SO_REUSEADDR, so
    a port still in TIME_WAIT is skipped), then released for the caller's servers."""
    high = _first_ephemeral()
    candidates = random.sample(range(max(1024, high - SPAN), high), k=min(SPAN, high - 1024))
    sockets: list[socket.socket] = []
    try:
        for port in candidates:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            if len(sockets) == count:
                return [s.getsockname()[1] for s in sockets]
        raise RuntimeError(f"no {count} free ports between {high - SPAN} and {high}")
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]
