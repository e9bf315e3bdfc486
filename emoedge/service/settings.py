"""How a run is served over HTTP: the address (`--http [HOST:]PORT`) and its token, checked before anything loads.

Why a token is required off the loopback: the page shows every camera and the API adds sources (files on this
machine, cameras on its network); 127.0.0.1 is reachable only from the box itself (or through an SSH tunnel).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from emoedge import settings
from emoedge.errors import EmoedgeError
from emoedge.settings import option

TOKEN_ENV = "EMOEDGE_HTTP_TOKEN"
DEFAULT_HOST = "127.0.0.1"
MIN_TOKEN = 16  # characters: a guessable token is no protection


@dataclass(frozen=True)
class ServiceSettings:
    """`emoedge run`'s service options."""

    http: str | None = option(
        None,
        "serve the run over HTTP: a live page, /metrics, /healthz, /readyz and /api/streams; HOST defaults to "
        f"{DEFAULT_HOST}; with it the run goes on until stopped, even when every stream has ended",
        metavar="[HOST:]PORT",
    )
    http_token: str | None = option(
        None,
        f"token every HTTP request must carry (Authorization: Bearer TOKEN, or ?token=TOKEN); required unless HOST is "
        f"a loopback address; default: ${TOKEN_ENV}",
        metavar="TOKEN",
    )

    def __post_init__(self) -> None:
        settings.validate(self)


@dataclass(frozen=True)
class Address:
    """Where the service listens and the token it asks for (None: none asked, loopback only)."""

    host: str
    port: int
    token: str | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def address(served: ServiceSettings) -> Address | None:
    """The address `served` asks for (None without --http), its token from --http-token or $EMOEDGE_HTTP_TOKEN."""
    if served.http is None:
        return None
    text = served.http.strip()
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise EmoedgeError(f"--http {text}: expected [HOST:]PORT with PORT a number from 1 to 65535, e.g. 8080")
    token = served.http_token or os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < MIN_TOKEN:
        raise EmoedgeError(
            f"--http-token: {len(token)} characters; expected at least {MIN_TOKEN} (e.g. openssl rand -hex 16)"
        )
    if token is None and not _loopback(host):
        raise EmoedgeError(
            f"--http {text}: serving on an address other than the loopback needs a token: give --http-token TOKEN "
            f"or set {TOKEN_ENV} (e.g. openssl rand -hex 16)"
        )
    return Address(host, int(port_text), token)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface
