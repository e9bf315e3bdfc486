"""The constraints files, resolved for each library set's own Python and platforms; and the check that they are.

    python tools/constraints.py write [SET ...]   # re-resolve the files (`make constraints` runs this)
    python tools/constraints.py check [SET ...]   # fail if a file does not install on its set's Python and platforms
    python tools/constraints.py extras            # fail if an extra does not install on a Python the classifiers name

Why: a file frozen by `pip freeze` holds what the freezing interpreter could install. Frozen on Python 3.11, the
JetPack 6 set pinned matplotlib 3.11.2, scikit-learn 1.9.1, … which have no release for JetPack's Python 3.10. Here
each set names its Python and platforms, and `uv pip compile --python-version … --python-platform …` resolves for
them whatever interpreter runs this script, against the indexes pip is configured with on this machine (`pip config
list`: index-url, extra-index-url, find-links, constraint), merged as pip merges them (`--index-strategy
unsafe-best-match`), wheels only (but for pure-Python packages that ship only a source distribution, SDIST_ONLY).

`write` keeps the versions a file pins today where they still resolve (uv reads the old file as preferences); the
set's own pins (JetPack's versions) are hard constraints. A set with two platforms (JetPack 6: the Jetson's aarch64
and CI's x86-64) gets one file: a version both platforms resolve is one plain line, a package of one platform only
(CUDA wheels on x86-64) carries a `platform_machine` marker.

`check` resolves each set again with its file as the constraints (`-c`) and fails, with uv's reason, when that
cannot resolve (a pin with no wheel for the Python or platform), when the set installs a package the file does not
pin, or when the file pins a package the set never installs; for every Python the set is made for (the main set's
file serves 3.11 to 3.13: CI's smoke lane installs its runtime extra on 3.13).

Needs uv (`pip install uv`; the dev extra brings it, and `make constraints` makes `.venv-tools/` with it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Installed with --no-deps in every set (Makefile): Ultralytics' own requirements would add opencv-python beside
# opencv-python-headless. Its version is pinned like any other; the packages it imports come from the runtime extra.
NO_DEPS = ("ultralytics",)
# Pure-Python packages published as source distributions only: pip builds them on any Python.
SDIST_ONLY = ("cppimport",)
# glibc 2.35 is JetPack 6's (Ubuntu 22.04); CI's Debian 12 has 2.36.
X86_64 = "x86_64-manylinux_2_35"
AARCH64 = "aarch64-manylinux_2_35"
PYPI = "https://pypi.org/simple"  # pip's index when none is configured


@dataclass(frozen=True)
class LibrarySet:
    """One constraints file: the Makefile's SET of that name installs `extras` and `packages` under it."""

    name: str
    file: str
    pythons: tuple[str, ...]  # major.minor: resolved for the first, checked for each (the Makefile's PYTHON_VERSIONS)
    platforms: tuple[str, ...]
    extras: tuple[str, ...]
    packages: tuple[str, ...] = ()  # installed beside the extras (the Makefile's EXTRA_PACKAGES)
    pins: tuple[str, ...] = ()  # the set's own versions: hard constraints of the resolution
    about: str = ""  # the header's first paragraph

    @property
    def python(self) -> str:
        return self.pythons[0]


SETS = {
    "x86": LibrarySet(
        name="x86",
        file="constraints.txt",
        pythons=("3.11", "3.12", "3.13"),
        platforms=(X86_64,),
        extras=("train", "export", "runtime", "explain", "triton", "dev"),
        about=(
            "The main set (`make setup`): tested versions of every package the set-up installs (pip -c), one coherent, "
            "reproducible set, for Python 3.11 to 3.13 (its numpy, 2.4, has no release for 3.10). CI's smoke lane "
            "installs the runtime extra alone on Python 3.13 under this file."
        ),
    ),
    "jetpack6": LibrarySet(
        name="jetpack6",
        file="constraints-jetpack6.txt",
        pythons=("3.10",),
        platforms=(AARCH64, X86_64),
        extras=("train", "runtime", "explain", "dev"),
        packages=("onnxslim",),
        pins=(
            "torch==2.5.*",
            "torchvision==0.20.*",
            "onnxruntime-gpu==1.20.*",
            "onnxruntime==1.20.*",
            "opencv-python-headless==4.10.*",
            "numpy==1.26.*",
            "onnx==1.17.*",
        ),
        about=(
            "The JetPack 6.1/6.2 library set (`make setup SET=jetpack6`, pip -c) on JetPack's Python 3.10: on a Jetson "
            "(aarch64) torch, torchvision and onnxruntime-gpu come from NVIDIA's Jetson wheels of these versions and "
            'TensorRT 10.3 from JetPack itself (README, "Jetson (JetPack 6)"); CI runs the same set on x86-64 with '
            "PyPI's wheels of the same versions (the x86-64-only lines: torch's CUDA libraries, triton, OpenVINO). "
            "Not in this set: nvidia-modelopt (0.47 needs onnx 1.21 and onnxruntime >= 1.22), so FP16/INT8 ONNX "
            "conversion (`emoedge export precision`) runs on the x86 machine; engines are built on the Jetson from its "
            "ONNX file. Pinned by JetPack: torch 2.5.x, torchvision 0.20.x, onnxruntime 1.20.x, OpenCV 4.10.x, numpy "
            "1.26.x; onnx 1.17 is the version onnxruntime 1.20 was built against. No ultralytics-platform: it needs "
            "Python 3.11 (Ultralytics' Platform client, which emoedge does not use)."
        ),
    ),
    "serve": LibrarySet(
        name="serve",
        file="constraints-serve.txt",
        pythons=("3.11",),
        platforms=(X86_64,),
        extras=("train", "runtime", "serve", "dev"),
        packages=("onnxslim",),
        pins=("numpy==1.26.*",),
        about=(
            "The library set of a Triton serving machine (`make setup SET=serve`): `emoedge serve` and its end-to-end "
            "tests. Why a set of its own: PyTriton's bundled Python backend is built against numpy 1.x (under numpy 2 "
            "its outputs arrive empty), and nvidia-pytriton requires numpy < 2; so this set is the x86 set "
            "(constraints.txt) with numpy 1.26 and what resolves with it (OpenCV 4.11), without the export extra "
            "(Model Optimizer brings cupy, numpy 2 only)."
        ),
    ),
}

LINE = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*platform_machine\s*==\s*['\"]([^'\"]+)['\"])?\s*$"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def machine(platform: str) -> str:
    return platform.split("-")[0]


def read_pins(path: Path) -> dict[tuple[str, str], str]:
    """(canonical name, machine or "") → version, from the `name==version [; platform_machine == "…"]` lines."""
    pins: dict[tuple[str, str], str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        found = LINE.match(text)
        if not found:
            raise SystemExit(f'{path}:{number}: expected `name==version` [; platform_machine == "…"]: {raw!r}')
        name, version, only = found.groups()
        pins[(canonical(name), only or "")] = version
    return pins


def pins_for(pins: dict[tuple[str, str], str], platform: str) -> dict[str, str]:
    here = machine(platform)
    return {name: version for (name, only), version in pins.items() if only in ("", here)}


def pip_sources(python: str = sys.executable) -> list[str]:
    """uv options for the indexes, find-links folders and constraints pip is configured with (`pip config list`)."""
    proc = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    values: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        section, _, option = key.rpartition(".")
        if section not in (":env:", "global", "install"):
            continue
        for item in value.strip().strip("'\"").split():
            if item not in values.setdefault(option, []):
                values[option].append(item)
    # pip takes every file of a version from every index; uv (unsafe-best-match) takes a version's files from the
    # first index that lists it. So pip's main index goes first: a local index holding one wheel of a version (a
    # cp311 cache, say) must not hide that version's other wheels.
    options: list[str] = []
    for url in [*values.get("index-url", [PYPI])[:1], *values.get("extra-index-url", [])]:
        options += ["--extra-index-url", url]
    for folder in values.get("find-links", []):
        options += ["--find-links", folder]
    for path in values.get("constraint", []) + values.get("constraints", []):
        if Path(path).is_file():  # e.g. a machine's cap on torch: what pip installs here respects it
            options += ["-c", path]
    return options


def find_uv() -> str:
    for candidate in (os.environ.get("UV"), str(Path(sys.executable).with_name("uv")), shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("uv not found: `pip install uv` (the dev extra has it), or UV=/path/to/uv")


class Resolver:
    def __init__(self, uv: str, sources: list[str]) -> None:
        self.uv, self.sources = uv, sources

    def compile(
        self,
        s: LibrarySet,
        python: str,
        platform: str,
        work: Path,
        *,
        constraints: Path | None,
        preferences: Path | None,
    ) -> tuple[dict[str, str], str]:
        """Resolve `s` for `python` on `platform` (NO_DEPS added without their dependencies): name → version, or
        uv's error."""
        resolved: dict[str, str] = {}
        pins = work / "pins.txt"
        pins.write_text("".join(f"{pin}\n" for pin in s.pins), encoding="utf-8")
        packages = work / "packages.txt"
        packages.write_text("".join(f"{name}\n" for name in s.packages), encoding="utf-8")
        no_deps = work / "no-deps.txt"
        no_deps.write_text("".join(f"{name}\n" for name in NO_DEPS), encoding="utf-8")
        for inputs, options in (
            (["pyproject.toml", str(packages)], [arg for extra in s.extras for arg in ("--extra", extra)]),
            ([str(no_deps)], ["--no-deps"]),
        ):
            out = work / "out.txt"
            if preferences is not None:
                shutil.copyfile(preferences, out)  # uv keeps an output file's versions where they still resolve
            else:
                out.unlink(missing_ok=True)
            cmd = [
                self.uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--no-python-downloads",
                "--python-version", python, "--python-platform", platform,
                "--index-strategy", "unsafe-best-match", "--only-binary", ":all:",
                *(arg for name in SDIST_ONLY for arg in ("--no-binary", name)),
                *self.sources, "-c", str(pins), *(["-c", str(constraints)] if constraints else []),
                *options, *inputs, "-o", str(out),
            ]  # fmt: skip
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                return {}, proc.stderr.strip()
            for (name, _), version in read_pins(out).items():
                resolved[name] = version
        return resolved, ""

    def check(self, s: LibrarySet, file: Path | None = None) -> list[str]:
        """What is wrong with `file` (default: the set's) for its set: one line per problem, uv's reason included."""
        path = file or REPO / s.file
        pinned = read_pins(path)
        problems: list[str] = []
        installed: set[tuple[str, str]] = set()
        every_target_resolved = True
        for python, platform in ((python, platform) for python in s.pythons for platform in s.platforms):
            with tempfile.TemporaryDirectory() as work:
                resolved, error = self.compile(s, python, platform, Path(work), constraints=path, preferences=None)
            where = f"{path.name} ({s.name} set: Python {python}, {platform})"
            if error:
                problems.append(f"{where} does not resolve:\n{error}")
                every_target_resolved = False
                continue
            expected = pins_for(pinned, platform)
            for name, version in resolved.items():
                if name not in expected:
                    problems.append(f"{where}: {name}=={version} is installed but not pinned")
            installed |= {key for key in pinned if key[0] in resolved and key[1] in ("", machine(platform))}
        if every_target_resolved:
            for (name, only), version in pinned.items():
                if (name, only) not in installed:
                    on = f" ({only} only)" if only else ""
                    problems.append(f"{path.name} ({s.name} set): {name}=={version}{on} is pinned but never installed")
        return problems

    def write(self, s: LibrarySet) -> Path:
        path = REPO / s.file
        per_platform: dict[str, dict[str, str]] = {}
        for platform in s.platforms:
            with tempfile.TemporaryDirectory() as work:
                resolved, error = self.compile(
                    s, s.python, platform, Path(work), constraints=None, preferences=path if path.exists() else None
                )
            if error:
                raise SystemExit(f"{s.name} set, Python {s.python}, {platform}: no resolution\n{error}")
            per_platform[platform] = resolved
        lines: list[str] = []
        for name in sorted({name for resolved in per_platform.values() for name in resolved}):
            versions = {platform: resolved.get(name) for platform, resolved in per_platform.items()}
            if len(set(versions.values())) == 1:
                lines.append(f"{name}=={next(iter(versions.values()))}")
            else:  # on one platform only, or different versions on each
                lines += [f'{name}=={v} ; platform_machine == "{machine(p)}"' for p, v in versions.items() if v]
        path.write_text(header(s) + "".join(f"{line}\n" for line in lines), encoding="utf-8")
        return path


def admitted_pythons() -> tuple[str, ...]:
    """The Python versions pyproject.toml's classifiers name (3.10, 3.11, …)."""
    found = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', (REPO / "pyproject.toml").read_text())
    return tuple(sorted(set(found), key=lambda v: tuple(map(int, v.split(".")))))


def extras() -> tuple[str, ...]:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return tuple(re.findall(r"^([a-z0-9][a-z0-9_-]*)\s*=", section, flags=re.MULTILINE))


# PyPI's tensorrt packages are source distributions that fetch NVIDIA's wheels from NVIDIA's own index when built (on
# a Jetson, TensorRT comes with JetPack instead): nothing to resolve from wheels, so the extras check leaves it out.
NOT_RESOLVED = ("tensorrt",)


def check_extras(resolver: Resolver, python: str, platform: str) -> str:
    """Every extra but NOT_RESOLVED, all at once, from wheels, for `python` on `platform`: uv's error, or ""."""
    chosen = [name for name in extras() if name not in NOT_RESOLVED]
    every = LibrarySet(name="every extra", file="", pythons=(python,), platforms=(platform,), extras=tuple(chosen))
    with tempfile.TemporaryDirectory() as work:
        return resolver.compile(every, python, platform, Path(work), constraints=None, preferences=None)[1]


def header(s: LibrarySet) -> str:
    also = f" (checked for {' and '.join(s.pythons[1:])} too)" if len(s.pythons) > 1 else ""
    how = (
        f"Made by `make constraints`: resolved for Python {s.python}{also} on {' and '.join(s.platforms)} "
        f"(tools/constraints.py: uv pip compile --python-version {s.python} --python-platform PLATFORM, wheels only, "
        "the indexes pip is configured with). Change the set in tools/constraints.py and rerun it, never by hand; "
        "`make test` checks this file (tests/test_constraints.py)."
    )
    lines = [*textwrap.wrap(s.about, 116, break_on_hyphens=False), *textwrap.wrap(how, 116, break_on_hyphens=False)]
    return "".join(f"# {line}\n" for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("write", "check", "extras"), help="extras: every extra on every Python")
    parser.add_argument("sets", nargs="*", metavar="SET", help=f"{', '.join(SETS)}; default: all")
    parser.add_argument("--file", type=Path, help="check this file instead of the set's own (one set)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.sets if name not in SETS]
    if unknown:
        parser.error(f"unknown set {unknown[0]!r}: expected one of {', '.join(SETS)}")
    resolver = Resolver(find_uv(), pip_sources())
    if args.action == "extras":
        errors = 0
        for python, platform in ((py, pl) for py in admitted_pythons() for pl in (X86_64, AARCH64)):
            error = check_extras(resolver, python, platform)
            print(
                f"every extra but {', '.join(NOT_RESOLVED)}, Python {python}, {platform}: {error or 'ok'}", flush=True
            )
            errors += bool(error)
        return 1 if errors else 0
    if args.action == "write":
        for name in args.sets or SETS:
            print(f"wrote {resolver.write(SETS[name]).name}")
        return 0
    chosen = [SETS[name] for name in args.sets or SETS]
    if args.file and len(chosen) != 1:
        raise SystemExit("--file needs exactly one set")
    failed = False
    for s in chosen:
        problems = resolver.check(s, args.file)
        print(f"{s.name}: " + ("ok" if not problems else "FAILED"), flush=True)
        for problem in problems:
            print("  " + problem.replace("\n", "\n  "))
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
