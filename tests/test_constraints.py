"""Each constraints file installs on its set's own Python and platforms, and every extra on every Python we claim.

A constraints file frozen on the wrong interpreter pins versions that do not exist for the set's Python (the JetPack 6
set, frozen on 3.11, pinned matplotlib 3.11.2 for JetPack's Python 3.10). tools/constraints.py resolves each file
again, for its set's Python and platforms, with the file as the constraints: a pin without a wheel there fails with
uv's reason. It asks the package indexes pip is configured with (PyPI here), and takes seconds once uv's cache holds
their pages.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cli_helpers import REPO  # type: ignore[import-not-found]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("emoedge_constraints_tool", REPO / "tools" / "constraints.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


TOOL = _tool()


@pytest.fixture(scope="module")
def resolver():
    try:
        uv = TOOL.find_uv()
    except SystemExit as exc:
        pytest.fail(str(exc))
    return TOOL.Resolver(uv, TOOL.pip_sources())


@pytest.mark.parametrize("name", sorted(TOOL.SETS))
def test_each_constraints_file_installs_on_its_sets_python_and_platforms(resolver, name):
    problems = resolver.check(TOOL.SETS[name])
    assert not problems, "\n".join(problems)


def _edited(library_set, folder, pattern: str, replacement: str):
    """A copy of the set's constraints file in `folder` with `pattern` replaced."""
    text = (REPO / library_set.file).read_text(encoding="utf-8")
    copy = folder / Path(library_set.file).name
    copy.write_text(re.sub(pattern, replacement, text), encoding="utf-8")
    return copy


def test_a_pin_without_a_wheel_for_the_sets_python_fails_the_check(resolver, tmp_path):
    """What happened to the JetPack 6 set: matplotlib 3.11.2 has wheels for Python 3.11 and newer only."""
    jetpack = TOOL.SETS["jetpack6"]
    problems = resolver.check(jetpack, _edited(jetpack, tmp_path, r"(?m)^matplotlib==.*$", "matplotlib==3.11.2"))
    assert len(problems) == len(jetpack.platforms), problems  # once per platform
    assert all("does not resolve" in p and "matplotlib==3.11.2" in p for p in problems), problems


def test_a_package_the_set_installs_without_a_pin_fails_the_check(resolver, tmp_path):
    serve = TOOL.SETS["serve"]
    problems = resolver.check(serve, _edited(serve, tmp_path, r"(?m)^tqdm==.*\n", ""))
    assert len(problems) == 1 and "tqdm==" in problems[0] and "not pinned" in problems[0], problems


@pytest.mark.parametrize("name", sorted(TOOL.SETS))
def test_the_makefile_installs_the_set_the_check_resolves(name):
    """`make setup SET=…` installs what tools/constraints.py resolves, and accepts the Pythons it resolves for."""
    cmd = ["make", "-s", "--no-print-directory", "set", f"SET={name}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    made = dict(line.split("=", 1) for line in proc.stdout.splitlines() if re.match(r"^[A-Z_]+=", line))
    s = TOOL.SETS[name]
    assert made == {
        "CONSTRAINTS": s.file,
        "EXTRAS": ",".join(s.extras),
        "EXTRA_PACKAGES": " ".join(s.packages),
        "PYTHON_VERSIONS": " ".join(s.pythons),
    }


def test_requires_python_and_the_classifiers_name_the_same_pythons():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    (lowest,) = re.findall(r'^requires-python = ">=(3\.\d+)"$', text, flags=re.MULTILINE)
    pythons = TOOL.admitted_pythons()
    minors = [int(v.split(".")[1]) for v in pythons]
    assert pythons[0] == lowest and minors == list(range(minors[0], minors[-1] + 1)), (lowest, pythons)
    covered = {python for s in TOOL.SETS.values() for python in s.pythons}
    assert covered == set(pythons), covered  # each claimed Python has a constraints file checked for it


@pytest.mark.parametrize("platform", ["x86_64-manylinux_2_35", "aarch64-manylinux_2_35"])
@pytest.mark.parametrize("python", TOOL.admitted_pythons())
def test_every_extra_installs_on_every_python_the_classifiers_name(resolver, python, platform):
    error = TOOL.check_extras(resolver, python, platform)
    assert not error, error


def test_the_headers_name_the_command_that_makes_them():
    for s in TOOL.SETS.values():
        head = [line for line in Path(REPO / s.file).read_text(encoding="utf-8").splitlines() if line.startswith("#")]
        assert TOOL.header(s).splitlines() == head, s.file
        assert "`make constraints`" in TOOL.header(s)
