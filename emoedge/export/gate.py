"""The accuracy gate of every export step: the new file and its source, evaluated on the validation split by the one
evaluator, and the new file refused when it loses more mAP than allowed.

Why the validation split: the gate decides whether a file ships, which is model selection; the test split stays for
the final report. Why refuse rather than warn: an FP16 or INT8 file that silently lost accuracy is the failure a
deployment tool exists to prevent. The new file is written under a temporary name beside its destination and only
renamed into place once it passed, so a refused export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emoedge.errors import EmoedgeError
from emoedge.evaluation.evaluate import evaluate_model
from emoedge.fileio import output_file
from emoedge.settings import checked

# Allowed val-mAP drop (points) by the precision of the new file: FP16 loses almost nothing; INT8 may lose a little.
DEFAULT_MAX_DROP = {"fp32": 0.2, "fp16": 0.2, "int8": 1.0}
GATE_SPLIT = "val"


@dataclass(frozen=True)
class MapGate:
    """Both val mAPs (0..1), the drop allowed (points) and the names the line uses."""

    source: float
    new: float
    max_drop: float
    source_name: str
    new_name: str

    @property
    def change(self) -> float:
        """New minus source, in points."""
        return 100.0 * (self.new - self.source)

    @property
    def passed(self) -> bool:
        return -self.change <= self.max_drop + 1e-9

    @property
    def line(self) -> str:
        return (
            f"{GATE_SPLIT} mAP: {self.source_name} {100 * self.source:.2f}, {self.new_name} {100 * self.new:.2f} "
            f"({self.change:+.2f} pt; allowed drop {self.max_drop:.2f} pt)"
        )


def check_max_drop(max_drop: float | None, precision: str) -> float:
    """The allowed drop in points: `max_drop` if given (finite, >= 0), else the default for `precision`."""
    if max_drop is None:
        return DEFAULT_MAX_DROP[precision]
    return checked(float, max_drop, "max_map_drop", low=0)  # mAP points, e.g. 0.2


def map_gate(
    source: Path,
    new: Path,
    data: Path,
    *,
    max_drop: float,
    source_device: str = "cpu",
    new_device: str = "auto",
    new_name: str = "new",
    progress: bool = False,
) -> MapGate:
    """Evaluate both files on the validation split of `data`; EmoedgeError (one line) when the drop exceeds
    `max_drop` points."""
    before = evaluate_model(source, data, split=GATE_SPLIT, device=source_device, progress=progress).m_ap
    after = evaluate_model(new, data, split=GATE_SPLIT, device=new_device, progress=progress).m_ap
    gate = MapGate(before, after, max_drop, Path(source).name, new_name)
    if not gate.passed:
        raise EmoedgeError(f"{Path(new).name} refused, nothing written: {gate.line}; raise --max-map-drop to accept it")
    return gate


@contextlib.contextmanager
def staged(out: Path, *companions: str) -> Iterator[Path]:
    """A temporary path beside `out` to write to; renamed to `out` (with each `out.name + suffix` companion file)
    when the block ends normally, removed with its companions when it raises."""
    out = output_file(out)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp = folder / out.name
    try:
        yield tmp
        for suffix in companions:
            if (folder / (out.name + suffix)).exists():
                os.replace(folder / (out.name + suffix), out.with_name(out.name + suffix))
        os.replace(tmp, out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
