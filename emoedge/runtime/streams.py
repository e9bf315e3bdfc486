"""The streams of a multi-camera run: an id, a source, optional boxes and an optional output video each.

Given on the command line (`--source A --source B`, `--boxes` matched by order, `--out DIR/`) or in a YAML file
(`--sources FILE.yaml`, a `streams:` list). Why ids are checked: a stream's id names its output video, tags its
events (`stream`) and fills the MQTT topic (`{stream}`), so it must be unique and safe in file names and topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from emoedge import settings
from emoedge.errors import EmoedgeError
from emoedge.runtime.redact import redact_url

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
VIDEO_SUFFIX = ".mp4"


@dataclass(frozen=True)
class StreamSpec:
    """One stream: `id` (letters, digits, `_.-`), `source` (as `emoedge run --source` takes it), `boxes` (a boxes
    file instead of the detector) and `out` (its annotated video)."""

    id: str
    source: str
    boxes: Path | None = None
    out: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID.fullmatch(self.id):
            raise EmoedgeError(
                f"stream id {self.id!r}: expected 1-64 letters, digits, '_', '.' or '-' (it names files and topics)"
            )
        if not str(self.source).strip():
            raise EmoedgeError(f"stream {self.id}: empty source")


@dataclass(frozen=True)
class _StreamsFile:
    streams: tuple[StreamSpec, ...]


def streams_from_args(sources: list[str], boxes: list[Path], out: Path | None) -> list[StreamSpec]:
    """Streams of repeated `--source` options: ids cam0, cam1, ...; `--boxes` matched by order (fewer is fine: the
    rest use the detector); `--out` a file for one stream, a folder (DIR/<id>.mp4) for several."""
    if len(boxes) > len(sources):
        raise EmoedgeError(f"--boxes given {len(boxes)} times for {len(sources)} source(s): one per source at most")
    several = len(sources) > 1
    if several and out is not None and out.suffix.lower() == VIDEO_SUFFIX:
        raise EmoedgeError(f"--out {out}: with {len(sources)} sources, expected a folder (one <stream>.mp4 each)")
    specs = []
    for i, source in enumerate(sources):
        ident = f"cam{i}" if several else "cam0"
        video = (out / f"{ident}{VIDEO_SUFFIX}" if several else out) if out is not None else None
        specs.append(StreamSpec(ident, source, boxes[i] if i < len(boxes) else None, video))
    return _checked(specs, "--source")


def load_streams(path: Path) -> list[StreamSpec]:
    """Streams of a YAML file: `streams: [{id, source, boxes?, out?}, ...]`; paths (a source file or folder too,
    not a URL or webcam index) relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise EmoedgeError(f"streams file {path}: file not found")
    try:
        data = settings.parse_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EmoedgeError(f"streams file {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        parsed = settings.from_dict(_StreamsFile, data)
    except EmoedgeError as exc:
        raise EmoedgeError(f"streams file {path}: {redact_url(str(exc))}") from None
    base = path.parent
    specs = [
        StreamSpec(s.id, _source(base, s.source), _relative(base, s.boxes), _relative(base, s.out))
        for s in parsed.streams
    ]
    return _checked(specs, f"streams file {path}")


def _source(base: Path, source: str) -> str:
    text = str(source).strip()
    if text.isdigit() or "://" in text:
        return text
    return str(_relative(base, Path(text)))


def _relative(base: Path, value: Path | None) -> Path | None:
    return value if value is None or value.is_absolute() else base / value


def _checked(specs: list[StreamSpec], where: str) -> list[StreamSpec]:
    if not specs:
        raise EmoedgeError(f"{where}: no stream given")
    seen: set[str] = set()
    for spec in specs:
        if spec.id in seen:
            raise EmoedgeError(f"{where}: stream id {spec.id!r} appears twice; ids must be unique")
        seen.add(spec.id)
    outs = [s.out for s in specs if s.out is not None]
    if len(set(outs)) != len(outs):
        raise EmoedgeError(f"{where}: two streams write the same video; give each its own 'out'")
    return specs
