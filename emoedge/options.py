"""Command-line options generated from settings dataclasses: one loop over a class's fields, one option each.

Why generated: a setting declares its help, choices (a `Literal`) and range where it is declared
(`emoedge.settings.option`); writing its argparse option by hand restated all three and drifted (a field without an
option crashed the command). Values parsed here are checked by the one settings mechanism (`settings.from_dict`),
together with the command's key=value overrides, so an option and its key give the same one-line errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union

from emoedge import settings
from emoedge.errors import EmoedgeError

T = TypeVar("T")


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of settings class `cls` whose declaration does not say `cli=False`."""
    hints = typing.get_type_hints(cls)
    for f in _with_options(cls):
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        text = meta.get("help", "")
        limits = meta.get("range")
        hint = _required(hints[f.name])
        if hint is bool:
            if f.default is True and not meta.get("flag"):
                flag = "--no-" + f.name.replace("_", "-")
            action = "store_false" if f.default is True else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=f.default, help=text)
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": text}
        if meta.get("required"):
            kwargs.update(required=True, default=None)
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if limits is not None:
            integer = int in (hint, *args)  # an int, or a tuple of ints
            kwargs["help"] = f"{text} ({limits.describe(integer)})" if text else limits.describe(integer)
        if origin is Literal:
            kwargs.update(choices=args, type=type(args[0]))
        elif origin in (list, tuple):
            kwargs.update(nargs="+", type=args[0], default=list(f.default))
        else:
            kwargs["type"] = hint
        parser.add_argument(flag, **kwargs)


def from_args(cls: type[T], args: argparse.Namespace, overrides: list[str], what: str) -> T:
    """Settings `cls` from its generated options, then the command's key=value `overrides` (which win); a bad value
    is one line naming `what`, the key and the value, whichever way it came."""
    values = {f.name: getattr(args, f.name) for f in _with_options(cls)}
    try:
        return settings.from_dict(cls, settings.apply_overrides(values, overrides))
    except EmoedgeError as exc:
        raise EmoedgeError(f"{what}: {exc}") from None


def keys(cls: type) -> str:
    """The class's keys, for the help of its key=value overrides."""
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _with_options(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("cli", True)]


def _required(hint: Any) -> Any:
    """`X` of `X | None`."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return options[0] if len(options) == 1 else str
    return hint
