"""Where the person detector's weights come from: the disk, or Ultralytics' own downloader.

Ultralytics users name official weights (`yolo11n.pt`) and expect them fetched on first use into the working folder,
as `YOLO("yolo11n.pt")` does; emoedge does the same through Ultralytics' downloader (resumable, size-checked,
published only when complete). Before that it asks, with the standard library only and within `PROBE_SECONDS`,
whether the download host answers: a machine that is offline gets one line before torch, Ultralytics or the emotion
model is loaded, not a stack of retries. `download=False` (`--no-download`) never downloads. Exported detectors
(.onnx, .engine, and the folders Ultralytics' exporter writes for OpenVINO — fastest on x86 CPUs — and NCNN — for
ARM CPUs) are never downloaded: they are made from .pt weights with Ultralytics' exporter, and the message says how.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

from emoedge.errors import EmoedgeError
from emoedge.runtime.redact import redact_url

DEFAULT_WEIGHTS = "yolo11n.pt"
WEIGHT_SUFFIXES = (".pt", ".onnx", ".engine")
EXPORTED_FOLDERS = {"_openvino_model": "openvino", "_ncnn_model": "ncnn"}  # folder name ending → export format
CONFIG_SUFFIXES = (".yaml", ".yml")  # an architecture file: an untrained model, for tests and smoke runs
RELEASES = ("github.com", 443)  # where Ultralytics' downloader fetches official weights
PROBE_SECONDS = 0.8  # DNS and TCP connect to the download host; a dead resolver can hang far longer
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s)'\"]+")


def detector_weights(weights: str | Path | None, *, download: bool = True) -> Path:
    """The local file for `weights` (a path, an official Ultralytics name or an http(s) URL), fetched if need be.

    None means the default, `yolo11n.pt`. Architecture files (.yaml) are passed through: Ultralytics builds an
    untrained model from them. Every failure is one `EmoedgeError` line naming the file and what to do.
    """
    text = str(DEFAULT_WEIGHTS if weights is None else weights)
    url = urlsplit(text) if text.lower().startswith(("http://", "https://")) else None
    path = Path(unquote(url.path).rsplit("/", 1)[-1]) if url else Path(text)
    shown = _shown(text)
    suffix = path.suffix.lower()
    if suffix in CONFIG_SUFFIXES and url is None:
        return path
    folder_format = next((f for end, f in EXPORTED_FOLDERS.items() if path.name.rstrip("/").endswith(end)), None)
    if folder_format is not None and url is None:
        if path.is_dir():
            return path
        stem = path.name[: -len(next(e for e in EXPORTED_FOLDERS if path.name.endswith(e)))]
        raise EmoedgeError(
            f"detector {shown} not found: export it from PyTorch weights with Ultralytics' exporter "
            f"(yolo export model={stem}.pt format={folder_format}), then pass --detector {path.name}"
        )
    if suffix not in WEIGHT_SUFFIXES:
        raise EmoedgeError(
            f"detector {shown}: expected Ultralytics YOLO weights ({', '.join(WEIGHT_SUFFIXES)}) or an exported "
            f"folder (*{', *'.join(EXPORTED_FOLDERS)}), not a {suffix or 'suffix-less'} file"
        )
    if path.is_file():
        return path
    if suffix != ".pt":
        raise EmoedgeError(
            f"detector {shown} not found: export it from PyTorch weights with Ultralytics' exporter "
            f"(yolo export model={path.stem}.pt format={suffix[1:]}), then pass --detector {path.name}"
        )
    fetch_hint = f"download {path.name} on a machine with internet and pass --detector PATH, or give --boxes FILE"
    if url is None and path.name != text:
        raise EmoedgeError(f"detector {shown} not found (a path, so nothing is downloaded): {fetch_hint}")
    if not download:
        raise EmoedgeError(f"detector {shown} not found and downloads are off (--no-download): {fetch_hint}")
    host = (url.hostname or "", url.port or (443 if url.scheme.lower() == "https" else 80)) if url else RELEASES
    if not reachable(*host):
        raise EmoedgeError(
            f"detector {shown} is not on disk and {host[0]} does not answer within {PROBE_SECONDS} s "
            f"(offline?): {fetch_hint}"
        )
    return _download(text if url else path.name, shown)


def reachable(host: str, port: int, timeout: float = PROBE_SECONDS) -> bool:
    """Whether `host:port` (or the HTTPS proxy the environment names) accepts a TCP connection within `timeout` s.

    Runs in a daemon thread because `getaddrinfo` takes no timeout: a machine whose resolver is unreachable would
    otherwise wait its resolver's full retry schedule.
    """
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parts.hostname or host, parts.port or 8080
    answered = threading.Event()

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answered.set()
        except OSError:
            pass

    probe = threading.Thread(target=connect, name="emoedge-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    return answered.is_set()


def _download(name_or_url: str, shown: str) -> Path:
    """Ultralytics' downloader: official names from its release assets, URLs as given; saved in the working folder."""
    from emoedge.runtime.yolo import import_ultralytics

    import_ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

    if "://" not in name_or_url and name_or_url not in GITHUB_ASSETS_NAMES:
        raise EmoedgeError(
            f"detector {shown} not found, and it is not an Ultralytics release asset to download "
            f"(such as {DEFAULT_WEIGHTS}, yolov8n.pt, yolo26n.pt): check the name, or pass --detector PATH"
        )
    try:
        return Path(attempt_download_asset(name_or_url, progress=True))
    except Exception as exc:  # Ultralytics raises ConnectionError, requests' errors, OSError for a full disk ...
        # Ultralytics wraps the transport's error (an HTTP status, a refused connection) in its own, which guesses
        # "may be offline" because emoedge keeps it offline: the cause says what happened. URLs may carry secrets.
        reason = exc.__cause__ or exc
        first = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
        raise EmoedgeError(f"detector {shown}: download failed ({_shown(first).strip('❌ ')[:160]})") from None


def _shown(text: str) -> str:
    """`text` with every URL in it as messages may show it: no credentials, no query (signed URLs carry tokens)."""
    return _URL.sub(lambda m: redact_url(m.group()).split("?", 1)[0], text)
