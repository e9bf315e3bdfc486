"""The YAML files shipped inside the package: training recipes (`recipes/`) and deployment targets (`targets/`).

Why package data: an installed wheel must be complete, so `emoedge train paper` and `--target jetson-orin` work in
any folder, not only in a checkout. The repository's top-level `train/` and `export/` are links to these folders,
the visible place to read them (one copy, not two).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

from emoedge.errors import EmoedgeError
from emoedge.settings import did_you_mean

Kind = Literal["recipe", "target"]
FOLDERS: dict[str, str] = {"recipe": "recipes", "target": "targets"}


def shipped_folder(kind: Kind) -> Path:
    """The installed folder of recipes or targets."""
    return Path(str(files("emoedge") / FOLDERS[kind]))


def shipped_names(kind: Kind) -> list[str]:
    """Names (file stems) of the shipped recipes or targets, sorted."""
    return sorted(p.stem for p in shipped_folder(kind).glob("*.yaml"))


def find(kind: Kind, name: str | Path) -> Path:
    """A YAML file given by path, or the name of a shipped one (`paper`, `jetson-orin.yaml`).

    A path that exists wins; otherwise the shipped file of that name. A bare name that is neither is one line with
    the closest shipped name or the list of them (`papr` → "did you mean 'paper'?"); a path in a folder is returned
    as given, so that the reader's "file not found" names what the user typed.
    """
    path = Path(name)
    if path.exists():
        return path
    text = str(name)
    stem = text[: -len(path.suffix)] if path.suffix in (".yaml", ".yml") else text
    shipped = shipped_folder(kind) / f"{stem}.yaml"
    if shipped.is_file():
        return shipped
    if path.parent == Path("."):
        raise EmoedgeError(
            f"{kind} {text}: no such file here and no shipped {kind} of that name{did_you_mean(stem, shipped_names(kind))}"
        )
    return path
