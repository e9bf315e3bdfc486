"""`emoedge data check DIR`: what a dataset holds per split and category, and what is wrong with it.

Fatal problems (a split that cannot be read, image files that are missing or are not images, persons whose box is
unusable) make training impossible or silently lose persons; the others (a category without positives in a split,
so its AP is undefined) are reported and tolerated. Every bad box and bad image file is listed once, with where it
is annotated, so that the annotations can be fixed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoedge.categories import CATEGORIES
from emoedge.data.dataset import missing_images, undecodable_images
from emoedge.data.emotic import SPLITS, EmoticWarning, load_split, resolve_source
from emoedge.errors import EmoedgeError


@dataclass(frozen=True)
class SplitReport:
    """Counts for one split; `positives` is per category in CATEGORIES order."""

    split: str
    source: str  # the annotation file read
    images: int
    persons: int
    positives: tuple[int, ...]
    skipped: int  # without category or with a non-finite VAD
    clipped: int
    missing_images: tuple[str, ...]
    bad_boxes: tuple[str, ...] = ()  # persons skipped for an unusable box: "where: box [...] what is wrong"
    undecodable_images: tuple[str, ...] = ()  # files that exist but are not images


@dataclass
class DatasetReport:
    """Everything `check_dataset` found; `problems` lists all problems, `fatal` the subset that blocks use."""

    root: Path
    format: str
    splits: dict[str, SplitReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)

    def _problem(self, message: str, *, fatal: bool) -> None:
        self.problems.append(message)
        if fatal:
            self.fatal.append(message)


def check_dataset(root: Path, fmt: str = "auto") -> DatasetReport:
    """Read every split of the dataset at `root`, count it, and check its boxes and image files."""
    root = Path(root)
    if not root.is_dir():
        raise EmoedgeError(f"dataset {root}: no such directory")
    report = DatasetReport(root=root, format=fmt)
    for split in SPLITS:
        try:
            _, source = resolve_source(root, split, fmt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmoticWarning)  # the counts go in the report instead
                data = load_split(root, split, fmt)
        except EmoedgeError as exc:
            report._problem(f"{split}: {exc}", fatal=True)
            continue
        if data.records:
            positives = np.stack([r.multi_hot() for r in data.records]).sum(axis=0).astype(int)
        else:
            positives = np.zeros(len(CATEGORIES), dtype=int)
        entry = SplitReport(
            split=split,
            source=str(source),
            images=len({(r.folder, r.filename) for r in data.records}),
            persons=len(data.records),
            positives=tuple(int(v) for v in positives),
            skipped=data.skipped,
            clipped=data.clipped,
            missing_images=tuple(missing_images(data.records, root)),
            bad_boxes=data.bad_boxes,
            undecodable_images=tuple(undecodable_images(data.records, root)),
        )
        report.splits[split] = entry
        if not data.records:
            report._problem(f"{split}: no usable person", fatal=True)
        for summary, _, found in _listed(entry):
            if found:
                report._problem(f"{split}: {len(found)} {summary}, e.g. {found[0]}", fatal=True)
        absent = [c for c, n in zip(CATEGORIES, positives) if n == 0]
        if data.records and absent:
            report._problem(
                f"{split}: no positives for {len(absent)} categor{'y' if len(absent) == 1 else 'ies'} "
                f"({', '.join(absent)}): their AP is undefined",
                fatal=False,
            )
    return report


def _listed(split: SplitReport) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """The fatal findings of a split that name one file or person each: (summary, label of one, the entries)."""
    return (
        ("image file(s) missing", "missing", split.missing_images),
        ("image file(s) not decodable images", "not an image", split.undecodable_images),
        ("person(s) with an unusable box (skipped in training)", "unusable box", split.bad_boxes),
    )


def format_report(report: DatasetReport) -> str:
    """A readable text: a table of splits × counts, a table of categories × splits, the problems, then every bad
    box and image file to fix."""
    lines = [f"dataset {report.root} (format: {report.format})"]
    splits = list(report.splits.values())
    sources = {s.source for s in splits}
    if len(sources) == 1:
        lines.append(f"  annotations: {sources.pop()}")
    else:
        lines += [f"  {s.split}: {s.source}" for s in splits]
    if splits:
        lines.append("")
        # images: those with at least one usable person; skipped: without category or with a non-finite VAD
        header = ("split", "images", "persons", "skipped", "bad boxes", "clipped", "missing images", "undecodable")
        rows = [
            (s.split, s.images, s.persons, s.skipped, len(s.bad_boxes), s.clipped, len(s.missing_images),
             len(s.undecodable_images))
            for s in splits
        ]  # fmt: skip
        lines += _table(header, rows)
        lines.append("")
        header = ("category", *(s.split for s in splits))
        rows = [(name, *(s.positives[k] for s in splits)) for k, name in enumerate(CATEGORIES)]
        lines += _table(header, rows)
    lines.append("")
    if report.problems:
        lines.append(f"problems ({len(report.fatal)} fatal):")
        fatal = set(report.fatal)
        lines += [f"  {'FATAL ' if p in fatal else ''}{p}" for p in report.problems]
        details = [f"  {s.split}: {label}: {item}" for s in splits for _, label, found in _listed(s) for item in found]
        if details:
            lines += ["", "to fix (every one):", *details]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    cells = [tuple(str(v) for v in header)] + [tuple(str(v) for v in row) for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(widths[k + 1]) for k, cell in enumerate(row[1:])]
        return "  ".join([first, *rest]).rstrip()

    return [line(cells[0]), line(tuple("-" * w for w in widths))] + [line(row) for row in cells[1:]]
