"""Output locations, atomic writes and safe loading of torch files.

Why: a crash or Ctrl-C must never leave a half-written checkpoint in place of a good one; an output path that
cannot be written (a file where a folder should be, a read-only place) is one line before any work starts, not a
traceback after it; a command that fails leaves nothing it created (`removed_on_failure`), unless it had written
results worth keeping (`keep_outputs`: a checkpoint to resume from, the record of a run); and a checkpoint from an
untrusted source must never run code when loaded (`weights_only=True`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emoedge.errors import EmoedgeError

ZIP_MAGIC = b"PK\x03\x04"  # a zip archive's first local header: torch.save's format since torch 1.6
PICKLE_PROTO = b"\x80"  # the first opcode of every pickle of protocol 2 or later (torch's legacy format)


_journal: list[Path] | None = None  # what the command running in `removed_on_failure` created, oldest first
_journal_lock = threading.Lock()  # output paths are also checked on the run's threads


@contextlib.contextmanager
def removed_on_failure() -> Iterator[None]:
    """Remove the files and folders that `output_folder` and `output_file` create inside this block if the block
    fails (an exception other than an interrupt, whose outputs are complete by contract), unless `keep_outputs`
    was called. A path that existed before is never removed: only what this block brought into being."""
    global _journal
    with _journal_lock:
        _journal = []
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        with _journal_lock:
            created, _journal = _journal or [], None
        for path in reversed(created):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):  # never created (a file stood where its folder should be)
                    path.unlink(missing_ok=True)
        raise
    finally:
        with _journal_lock:
            _journal = None


def keep_outputs() -> None:
    """What the running command created, and creates from now on, stays even if it fails later: it holds results
    (called once a training run has a checkpoint to resume from, a run has begun its record — streams added to it
    later included —, a server has its log)."""
    global _journal
    with _journal_lock:
        _journal = None


def _note_created(path: Path) -> None:
    """Record the outermost of `path` and its folders that does not exist yet (it is about to be created)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing = candidate
    with _journal_lock:
        if _journal is not None and missing is not None and missing not in _journal:
            _journal.append(missing)


def output_folder(folder: str | Path, what: str = "output folder") -> Path:
    """`folder`, created with its parents and checked writable; every failure is one line naming it.

    Called where a command learns its output location, so that a bad one fails before the work, not after it.
    """
    folder = Path(folder)
    _note_created(folder.absolute())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _new_temp(folder / ".emoedge-write-test").unlink()
    except OSError as exc:
        raise EmoedgeError(f"{what} {folder}: cannot write there ({_why(folder, exc)})") from None
    return folder


def output_file(path: str | Path, what: str = "output file", suffixes: tuple[str, ...] = ()) -> Path:
    """`path` as a file to (over)write: not a folder, its folder created and writable, its suffix one of
    `suffixes` when given (the format written: an ONNX file named `.pt` would be read as a checkpoint later);
    failures are one line."""
    path = Path(path)
    if path.is_dir():
        raise EmoedgeError(f"{what} {path}: is a folder; expected a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise EmoedgeError(
            f"{what} {path}: expected a file name ending in {' or '.join(suffixes)} (the format written)"
        )
    _note_created(path.absolute())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _new_temp(path).unlink()
    except OSError as exc:
        raise EmoedgeError(f"{what} {path}: cannot write there ({_why(path.parent, exc)})") from None
    return path


def _why(folder: Path, exc: OSError) -> str:
    """The reason a folder cannot be written, as a user would say it."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        return f"{blocking} is a file, not a folder"
    return exc.strerror or type(exc).__name__


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it over `path`."""
    path = output_file(path)
    tmp = _new_temp(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder` (never a finished file); returns them.

    Only a process that owns `folder` (a resumed training run) may call this: a concurrent writer's temp file
    looks the same.
    """
    stale = sorted(p for p in Path(folder).glob(".*.*.tmp") if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


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
    import torch  # here, as in `safe_torch_load`: output paths are checked (run, CLI) before torch loads

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def safe_torch_load(path: str | Path, *, what: str = "checkpoint") -> Any:
    """Load a torch file with `weights_only=True`, turning every failure into one clear line.

    Only a file that starts as torch's files do is unpickled at all (a zip archive from `torch.save`, or a legacy
    pickle, which starts with the PROTO opcode); anything else is "not a torch file" at once. A file that names a
    Python class (a GLOBAL the safe unpickler refuses) is called what it is; every other failure is a corrupt file.
    Python-2 pickles (CSAILVision's Places365 files) need `encoding="latin1"`; that is tried second.
    """
    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"{what} {path}: file not found")
    with open(path, "rb") as handle:
        head = handle.read(len(ZIP_MAGIC))
    if not head.startswith((ZIP_MAGIC, PICKLE_PROTO)):
        raise EmoedgeError(f"{what} {path}: not a torch file (expected a zip archive written by torch.save)")
    import torch

    errors: list[str] = []
    for kwargs in ({}, {"encoding": "latin1"}):
        try:
            with warnings.catch_warnings():
                # torch warns that pickle args need weights_only=False, yet its safe unpickler honours `encoding`;
                # and it warns of unusual pickle protocols in damaged files, which the error below reports anyway.
                warnings.simplefilter("ignore", UserWarning)
                return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
        except pickle.UnpicklingError as exc:
            if "Unsupported global" in str(exc):
                raise EmoedgeError(
                    f"{what} {path}: refused to load, it contains pickled Python objects (not only "
                    "tensors and plain data); emoedge loads files with weights_only=True"
                ) from None
            errors.append(_reason(exc))
        except Exception as exc:
            errors.append(_reason(exc))
    raise EmoedgeError(f"{what} {path}: truncated or corrupt torch file ({errors[0][:160]})")


def _reason(exc: Exception) -> str:
    """The gist of a load error: torch's own long messages name the failing pickle step in their middle."""
    text = str(exc)
    step = next((line.strip() for line in text.splitlines() if line.strip().startswith("Unsupported")), None)
    if step:
        return step
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
