"""The one settings mechanism (emoedge.settings): every kind of value it checks, and its messages."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from emoedge import resources, settings
from emoedge.errors import EmoedgeError
from emoedge.export.targets import load_target


@dataclass(frozen=True)
class Inner:
    size: tuple[int, int]
    mode: Literal["fast", "exact"] = "fast"


@dataclass(frozen=True)
class Finite:
    inner: Inner
    rate: float = 0.5

    def __post_init__(self) -> None:
        if not math.isfinite(self.rate):
            raise EmoedgeError(f"rate {self.rate}: expected a finite number")


@dataclass(frozen=True)
class Outer:
    inner: Inner
    rate: float = 0.5
    names: tuple[str, ...] = ()
    where: Path | None = None
    extra: dict[str, int] = field(default_factory=dict)


def test_a_mapping_becomes_typed_values():
    got = settings.from_dict(Outer, {"inner": {"size": [3, 4]}, "rate": 1, "names": ["a"], "where": "x/y"})
    assert got == Outer(Inner((3, 4)), 1.0, ("a",), Path("x/y"))
    assert settings.to_dict(got) == {
        "inner": {"size": [3, 4], "mode": "fast"}, "rate": 1.0, "names": ["a"], "where": "x/y", "extra": {}
    }  # fmt: skip


@pytest.mark.parametrize(
    "data, message",
    [
        ({"inner": {"size": [1, 2]}, "rat": 1.0}, "rat: unknown key (did you mean 'rate'?)"),
        ({"inner": {"size": [1, 2]}, "zzz": 1}, "zzz: unknown key (known: extra, inner, names, rate, where)"),
        ({}, "missing key(s) inner"),
        ({"inner": {}}, "missing key(s) inner.size"),
        ({"inner": {"size": [1]}}, "inner.size: expected 2 values, got 1 ([1])"),
        ({"inner": {"size": [1, "2"]}}, "inner.size[1]: expected int, got '2'"),
        ({"inner": {"size": [1, True]}}, "inner.size[1]: expected int, got True"),
        (
            {"inner": {"size": [1, 2], "mode": "fats"}},
            "inner.mode 'fats': expected one of 'fast', 'exact' (did you mean 'fast'?)",
        ),
        ({"inner": {"size": [1, 2]}, "rate": "high"}, "rate: expected float, got 'high'"),
        ({"inner": {"size": [1, 2]}, "rate": float("nan")}, "rate: expected a finite number, got nan"),
        ({"inner": {"size": [1, 2]}, "names": "ab"}, "names: expected a list, got 'ab'"),
        ({"inner": {"size": [1, 2]}, "extra": {"a": 1.5}}, "extra.a: expected int, got 1.5"),
        ({"inner": [1, 2]}, "inner: expected a mapping, got [1, 2]"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(EmoedgeError) as caught:
        settings.from_dict(Outer, data)
    assert str(caught.value) == message


def test_overrides_reach_nested_keys_and_parse_as_yaml():
    data = settings.apply_overrides({"a": {"b": 1}}, ["a.b=2", "a.c=[1, 2]", "d=null"])
    assert data == {"a": {"b": 2, "c": [1, 2]}, "d": None}
    for bad in ("novalue", "=1", "a..b=1"):
        with pytest.raises(EmoedgeError, match="expected key=value"):
            settings.apply_overrides({}, [bad])


def test_exponents_without_a_dot_are_numbers_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads `1e-4` as a string; recipes write learning rates that way, so emoedge reads it as 1.2 does."""
    (tmp_path / "s.yaml").write_text("inner: {size: [2, 3]}\nrate: 1e-4\nnames: [1e3x, 2e]\n")
    loaded = settings.load(Outer, tmp_path / "s.yaml", "settings")
    assert loaded.rate == 1e-4 and loaded.names == ("1e3x", "2e")  # only whole numbers with exponents change
    assert settings.load(Outer, tmp_path / "s.yaml", "settings", ["rate=-2.5E+3"]).rate == -2500.0
    assert settings.parse_yaml("[1_000, .5, 3e5, 1.0e-2, 0x10]") == [1000, 0.5, 3e5, 0.01, 16]


def test_only_true_and_false_are_booleans_so_on_and_off_stay_words():
    """YAML 1.1 reads on/off/yes/no as booleans; settings whose values are the words "on" and "off" (`overlap`,
    `cuda_graphs`) need them as written, so emoedge reads them as YAML 1.2 does."""
    assert settings.parse_yaml("[on, off, yes, no, true, False, TRUE]") == ["on", "off", "yes", "no", True, False, True]
    assert settings.apply_overrides({}, ["overlap=on", "cuda_graphs=off"]) == {"overlap": "on", "cuda_graphs": "off"}


@pytest.mark.parametrize("override", ["rate=abc", "inner.size=[1, x]", "rate=.nan"])
def test_a_bad_override_is_named_whatever_the_fault(tmp_path, override):
    (tmp_path / "s.yaml").write_text("inner: {size: [2, 3]}\n")
    with pytest.raises(EmoedgeError, match=rf"^settings {tmp_path / 's.yaml'}, override {re.escape(override)}: "):
        settings.load(Finite, tmp_path / "s.yaml", "settings", [override])


def test_targets_inherit_with_base_and_take_overrides(tmp_path):
    base = load_target(resources.find("target", "jetson-orin"))
    dla = load_target(resources.find("target", "jetson-orin-dla"))
    assert dla.dla_core == 0 and base.dla_core is None
    assert (dla.workspace_mib, dla.precision, dla.gpu_fallback) == (base.workspace_mib, base.precision, True)
    assert base.persons.max == 16 and dla.persons.min == dla.persons.max == 4  # the DLA needs a fixed N
    small = load_target(resources.find("target", "desktop-gpu"), ["persons.max=8", "persons.opt=2"])
    assert (small.persons.opt, small.persons.max, small.name) == (2, 8, "desktop-gpu")
    with pytest.raises(EmoedgeError, match=r"persons.maxx: unknown key \(did you mean 'max'\?\)"):
        load_target(resources.find("target", "desktop-gpu"), ["persons.maxx=8"])


def test_shipped_files_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.shipped_names("recipe") == sorted(
        p.stem for p in resources.shipped_folder("recipe").glob("*.yaml")
    )
    assert "paper" in resources.shipped_names("recipe") and "jetson-orin" in resources.shipped_names("target")
    assert resources.find("recipe", "paper").is_file()
    assert resources.find("target", "jetson-orin.yaml").is_file()
    with pytest.raises(EmoedgeError, match=r"^recipe papr: no such file here and no shipped recipe of that name "
                       r"\(did you mean 'paper'\?\)$"):  # fmt: skip
        resources.find("recipe", "papr")
    with pytest.raises(EmoedgeError, match=r"^target nope: .* \(known: desktop-gpu, .*jetson-orin.*\)$"):
        resources.find("target", "nope")
    assert resources.find("recipe", "runs/nope.yaml") == Path("runs/nope.yaml")  # the reader names a path as typed
