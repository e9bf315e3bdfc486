"""Atomic writes and safe loading of torch files.

Why: a crash or Ctrl-C must never leave a half-written checkpoint in place of a good one, and a
checkpoint from an untrusted source must never run code when loaded (`weights_only=True`).
"""

from __future__ import annotations

import os
import pickle
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from emoedge.errors import EmoedgeError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _new_temp(path: Path) -> Path:
    """A new empty file beside `path`, created with mode 0o666 less the user's umask (as `open` would create the
    file itself; `tempfile.mkstemp` would make it 0o600, and every checkpoint, ONNX and report private)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` that never leaves a truncated file at `path`."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def safe_torch_load(path: str | Path, *, what: str = "checkpoint") -> Any:
    """Load a torch file with `weights_only=True`, turning every failure into one clear line.

    Python-2 pickles (CSAILVision's Places365 files) need `encoding="latin1"`; that is tried second.
    """
    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"{what} {path}: file not found")
    errors: list[str] = []
    for kwargs in ({}, {"encoding": "latin1"}):
        try:
            with warnings.catch_warnings():
                # torch warns that pickle args need weights_only=False, yet its safe unpickler honours
                # `encoding`; the warning is wrong for this use.
                warnings.filterwarnings("ignore", message="pickle_load_args only works")
                return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
        except pickle.UnpicklingError as exc:
            if "weights_only" in str(exc) or "Unsupported global" in str(exc):
                raise EmoedgeError(
                    f"{what} {path}: refused to load, it contains pickled Python objects (not only "
                    "tensors and plain data); emoedge loads files with weights_only=True"
                ) from None
            errors.append(str(exc))
        except Exception as exc:
            errors.append(str(exc) or type(exc).__name__)
    reason = errors[0].splitlines()[0] if errors and errors[0] else "unreadable"
    raise EmoedgeError(f"{what} {path}: truncated or corrupt torch file ({reason[:160]})")
