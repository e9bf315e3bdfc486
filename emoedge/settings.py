"""One settings mechanism: plain mappings (YAML files, JSON, `key=value` overrides) → frozen or plain dataclasses.

Why one: recipes, model cards, deployment targets, engine sidecars and the run and pretraining settings are all
"configuration is data", and every one of them must reject an unknown key (with a "did you mean"), a missing key
and a wrong type with the key named, the same way. A dataclass says what it takes through its type hints:

    nested dataclasses, `X | None`, `Literal[...]` (choices), `list[X]`, `tuple[X, ...]`, `tuple[X, Y]`,
    `dict[str, X]`, `Path`, and the scalars bool, int, float (an int is accepted), str.

A field may also carry its range and its command-line help in its declaration (`option(...)`: dataclass field
metadata). The range is checked here, with the type, whichever way the value came (a YAML file, a key=value
override, an option, a direct construction through `validate`), and the CLI builds its options from the same
declarations (`emoedge.options`), so a setting, its check and its option cannot drift apart. Checks that span
several fields stay in each class's `__post_init__`, where the meaning is known.
YAML files may start from another file with `base: other.yaml` (a path relative to the file), which they override.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from emoedge.errors import EmoedgeError

T = TypeVar("T")
QUIET_HELP = (
    "no progress: bars, start-up and per-epoch lines (results, warnings and errors still print)"  # every --quiet
)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1) with two YAML 1.2 rules, as JSON and Python read values too: `1e-4` and `3E5`
    are numbers (YAML 1.1 wants a dot, so a recipe's `lr: 1e-4` would arrive as the string '1e-4'), and only
    true/false are booleans (YAML 1.1 also reads on/off/yes/no so, and `overlap: on` or `cuda_graphs=off` would arrive
    as True/False for settings whose values are the words "on" and "off")."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {  # a copy: SafeLoader's own table stays as it is
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str) -> Any:
    """YAML text → Python data with the safe loader, exponents without a dot read as numbers (see `_Loader`)."""
    return yaml.load(text, Loader=_Loader)


@dataclass(frozen=True)
class Range:
    """Bounds of a number (or of each number of a tuple or list): `low` <= value <= `high`, either side strict with
    `low_open`/`high_open` and open-ended where None."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # value > low, not >= (seconds > 0)
    high_open: bool = False  # value < high, not <= (a weight in [0, 1))

    def check(self, value: Any, key: str) -> None:
        """One line naming `key` and `value` unless `value` (a number, or None: unset) is within the bounds."""
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                self.check(item, f"{key}[{i}]")
            return
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            raise EmoedgeError(f"{key} {_show(value)}: expected {self.describe(isinstance(value, int))}")

    def describe(self, integer: bool = False) -> str:
        """ "an integer >= 1", "a number in [0, 1)", "an integer from 32 to 4096", "a number > 0"."""
        what = "an integer" if integer else "a number"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            if self.low_open or self.high_open:
                return f"{what} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
            return f"{what} from {low} to {high}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {low}"
        return f"{what} {'<' if self.high_open else '<='} {high}"


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    cli: bool = True,
    required: bool = False,
) -> Any:
    """A settings field with its range and its command-line option declared where it is: `help` (the option's
    text), `low`/`high` (checked with the type; `low_open`/`high_open`: strictly), `flag` (the option's spelling, default --field-name; for a bool
    that defaults to True, the --no-... or --quiet flag that turns it off), `cli=False` (no option: a key only),
    `required` (the option must be given on the command line; the default serves Python callers)."""
    metadata = {
        "help": help,
        "range": Range(low, high, low_open, high_open) if low is not None or high is not None else None,
        "flag": flag,
        "metavar": metavar,
        "cli": cli,
        "required": required,
    }
    return dataclasses.field(default=default, metadata=metadata)


def checked(hint: Any, value: Any, key: str, *, low: float | None = None, high: float | None = None) -> Any:
    """`value` of type `hint` within [low, high], converted; for a function's own arguments (`workers`, `opset`),
    with the messages of settings fields."""
    value = convert(hint, value, key)
    Range(low, high).check(value, key)
    return value


def validate(obj: Any) -> None:
    """Check every field of a settings dataclass against its type hint and declared range (call it from
    `__post_init__`): values built in Python get the same one-line errors as values read from a file."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        converted = convert(hints[f.name], value, f.name)
        if type(converted) is not type(value):  # 1 for a float field, a list for a tuple, a str for a Path
            object.__setattr__(obj, f.name, converted)
        limits = f.metadata.get("range")
        if limits is not None:
            limits.check(converted, f.name)


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, naming the key of any unknown, missing or mistyped value."""
    if not isinstance(data, dict):
        raise EmoedgeError(f"{where or 'settings'}: expected a mapping, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for name in data:
        if name not in fields:
            raise EmoedgeError(f"{_key(where, str(name))}: unknown key{did_you_mean(str(name), fields)}")
    missing = [
        name for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]  # fmt: skip
    if missing:
        raise EmoedgeError(f"missing key(s) {', '.join(_key(where, m) for m in missing)}")
    values = {name: convert(hints[name], value, _key(where, name)) for name, value in data.items()}
    for name, value in values.items():
        limits = fields[name].metadata.get("range")
        if limits is not None:
            limits.check(value, _key(where, name))
    return cls(**values)


def convert(hint: Any, value: Any, key: str) -> Any:
    """`value` checked against the type hint `hint` and converted to it (lists to tuples, str to Path, ...)."""
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, key)  # an instance: checked when built
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return convert(option, value, key)
            except EmoedgeError as exc:
                errors.append(exc)
        raise errors[0] if len(options) == 1 else EmoedgeError(f"{key}: expected {_name(hint)}, got {_show(value)}")
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args if a == value):
            choices = ", ".join(repr(a) for a in args)
            hint_text = did_you_mean(value, args, listed=False)
            raise EmoedgeError(f"{key} {_show(value)}: expected one of {choices}{hint_text}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise EmoedgeError(f"{key}: expected a list, got {_show(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise EmoedgeError(f"{key}: expected {len(args)} values, got {len(value)} ({_show(value)})")
            return tuple(convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        items = [convert(args[0] if args else Any, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise EmoedgeError(f"{key}: expected a mapping, got {_show(value)}")
        return {str(k): convert(args[1] if args else Any, v, f"{key}.{k}") for k, v in value.items()}
    return _scalar(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is Any:
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise EmoedgeError(f"{key}: expected a file path, got {_show(value)}")
        return Path(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EmoedgeError(f"{key}: expected float, got {_show(value)}")
        if not math.isfinite(value):
            raise EmoedgeError(f"{key}: expected a finite number, got {_show(value)}")
        return float(value)
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise EmoedgeError(f"{key}: expected {_name(hint)}, got {_show(value)}")
    return value


def to_dict(obj: Any) -> Any:
    """Plain JSON/YAML-able data of a settings dataclass (tuples as lists, paths as strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return str(obj) if isinstance(obj, Path) else obj


def read_yaml(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML mapping with its `base:` chain merged in (later files override earlier ones)."""
    return _resolve(Path(path), what, ())


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply `section.key=value` strings (values parsed as YAML scalars/lists) to a mapping; returns a new one."""
    out = merge({}, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise EmoedgeError(f"override {item!r}: expected key=value, e.g. optim.epochs=10")
        try:
            value = parse_yaml(raw)
        except yaml.YAMLError:
            raise EmoedgeError(f"override {item!r}: value is not valid YAML") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return out


def load(cls: type[T], path: str | Path, what: str, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Read a YAML settings file (following `base:`), apply overrides, build `cls`; errors name the file."""
    path = Path(path)
    data = apply_overrides(read_yaml(path, what), overrides)
    if "name" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
        data.setdefault("name", path.stem)
    try:
        return from_dict(cls, data)
    except EmoedgeError as exc:
        given = [o for o in overrides if re.match(re.escape(o.partition("=")[0].strip()) + r"[ :\[]", str(exc))]
        source = f"{what} {path}" + (f", override {given[0]}" if given else "")  # where the bad value came from
        raise EmoedgeError(f"{source}: {exc}") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; lists and scalars in `over` replace those in `base`."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resolve(path: Path, what: str, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise EmoedgeError(f"{what} {path}: 'base' chain loops back to itself")
    data = _read_mapping(path, what)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise EmoedgeError(f"{what} {path}: base: expected a file path, got {_show(base)}")
    return merge(_resolve(path.parent / base, what, (*seen, path)), data)


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise EmoedgeError(f"{what} {path}: file not found")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise EmoedgeError(f"{what} {path}: not a text file (expected UTF-8 YAML)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EmoedgeError(f"{what} {path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    if not isinstance(data, dict):
        raise EmoedgeError(f"{what} {path}: expected a mapping at the top level")
    return data


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def did_you_mean(name: Any, known: Any, *, listed: bool = True) -> str:
    """ " (did you mean 'x'?)" for a close match, else the known names (when `listed`)."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(str(k) for k in known))})" if listed else ""


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _number(value: float | None) -> str:
    """A bound as people write it: 4096 and 4294967295 whole, 0.5 as it is."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
