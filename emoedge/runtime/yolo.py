"""Ultralytics, imported once on emoedge's terms: offline, never pip-installing at run time, quiet.

Ultralytics is told, before it is first imported, never to go online on its own (`YOLO_OFFLINE`: no update checks,
no telemetry, no hub calls) and never to pip-install a missing requirement (`YOLO_AUTOINSTALL`). The one download
emoedge allows, detector weights the user named, is started explicitly (`emoedge.runtime.weights`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from emoedge.errors import EmoedgeError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'emoedge[runtime]'"
ULTRALYTICS_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}  # forced: the offline, no-install guarantees


def import_ultralytics() -> Any:
    """The ultralytics module, imported the first time offline, with automatic installs and its log chatter off.

    Ultralytics reads these settings once, when `ultralytics.utils` is imported (ONLINE from YOLO_OFFLINE,
    AUTOINSTALL, VERBOSE), so the environment is written only before that first import and never again; a process
    that imported Ultralytics itself keeps its own settings (a warning says so if they allow going online or
    installing). torch is imported first: Ultralytics sets OMP_NUM_THREADS=1 when it is unset, which leaves a torch
    imported after it with one thread for the whole process.
    """
    if "ultralytics" not in sys.modules:
        for key, value in ULTRALYTICS_ENV.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        if "YOLO_VERBOSE" not in os.environ:  # the user's choice wins
            os.environ["YOLO_VERBOSE"] = "false"
    try:
        import torch  # noqa: F401 - before Ultralytics, see above
        import ultralytics
        from ultralytics import utils
    except ModuleNotFoundError as exc:
        if exc.name != "ultralytics":
            raise EmoedgeError(f"Ultralytics needs {exc.name!r}, which is not installed ({INSTALL_HINT})") from None
        raise EmoedgeError(
            f"person detection and tracking need Ultralytics, which is not installed ({INSTALL_HINT})"
        ) from None
    if utils.ONLINE or utils.AUTOINSTALL:  # only possible when imported by someone else first
        log.warning(
            "Ultralytics was imported before emoedge could configure it, and may go online (%s) or pip-install "
            "(%s): set YOLO_OFFLINE=1 and YOLO_AUTOINSTALL=false before importing it",
            utils.ONLINE,
            utils.AUTOINSTALL,
        )
    return ultralytics
