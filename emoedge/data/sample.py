"""A small synthetic dataset in EMOTIC's official on-disk layout, learnable from body AND scene.

Layout written (the same as the real release plus the preprocessed CSVs):
    out_dir/emotic/{mscoco,framesdb}/images/<file>.jpg
    out_dir/Annotations/Annotations.mat     variables train, val, test (MATLAB struct arrays)
    out_dir/emotic_pre/{train,val,test}.csv  the widely used preprocessed layout

What makes it useful for testing fusion: every image has a scene *mood* painted over its whole background
(colour + texture) that implies a few categories (`SCENE_MOODS`), and every person is a figure filling its
box (colour + stripes) that implies other categories (`BODY_TYPES`). A person's labels are the union of the
two sets, with a little label noise, so a body-only model cannot know the scene-implied half and does
clearly worse than one that also sees the scene. The two sets partition the 26 categories; moods are dealt
round-robin over images and figures over persons, so every category has positives in every split.

Deliberate defects, as in the real release (and fixed in number, so tests can count them):
    every split: image 0, last person has a box running past the right and bottom edges (clipped);
    train: image 1 has an extra person with no category, image 2 an extra person with NaN valence,
           image 3 only one person, without category (an image with no labels);
    val:   image 1 has an extra person with no category;
    test:  image 1 has an extra person whose combined VAD is NaN.
The CSVs hold, like the real preprocessed files, only the usable persons with clipped integer boxes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emoedge.categories import CATEGORIES
from emoedge.data.emotic import CSV_COLUMNS, SPLITS
from emoedge.data.records import clip_box
from emoedge.errors import EmoedgeError
from emoedge.fileio import output_folder
from emoedge.settings import checked


@dataclass(frozen=True)
class SceneMood:
    name: str
    color: tuple[int, int, int]  # RGB
    pattern: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class BodyType:
    name: str
    color: tuple[int, int, int]  # RGB
    stripe_angle: int  # degrees
    categories: tuple[str, ...]


SCENE_MOODS: tuple[SceneMood, ...] = (
    SceneMood("party", (235, 190, 40), "dots", ("Excitement", "Happiness", "Pleasure")),
    SceneMood("storm", (50, 60, 110), "diagonal", ("Disquietment", "Fear", "Surprise")),
    SceneMood("mourning", (95, 35, 95), "horizontal", ("Sadness", "Suffering", "Sympathy")),
    SceneMood("meadow", (70, 150, 60), "checker", ("Peace", "Yearning")),
    SceneMood("arena", (190, 95, 35), "vertical", ("Anticipation", "Engagement")),
)
BODY_TYPES: tuple[BodyType, ...] = (
    BodyType("red", (225, 25, 25), 0, ("Anger", "Annoyance", "Disapproval")),
    BodyType("blue", (30, 60, 235), 90, ("Fatigue", "Pain")),
    BodyType("cyan", (40, 225, 225), 45, ("Affection", "Sensitivity")),
    BodyType("cream", (245, 235, 170), 135, ("Confidence", "Esteem")),
    BodyType("grey", (140, 140, 140), 0, ("Aversion", "Disconnection")),
    BodyType("pink", (250, 110, 200), 90, ("Doubt/Confusion", "Embarrassment")),
)
SCENE_CATEGORIES: frozenset[str] = frozenset(c for m in SCENE_MOODS for c in m.categories)
BODY_CATEGORIES: frozenset[str] = frozenset(c for b in BODY_TYPES for c in b.categories)

FOLDERS: tuple[str, ...] = ("mscoco/images", "framesdb/images")
# Valence, arousal, dominance (1..10) typical of each category; a person's VAD is their mean plus noise.
_VAD_PROTOTYPE: dict[str, tuple[float, float, float]] = {
    "Affection": (8, 5, 6),
    "Anger": (2, 8, 7),
    "Annoyance": (3, 6, 5),
    "Anticipation": (6, 6, 6),
    "Aversion": (3, 5, 5),
    "Confidence": (8, 6, 8),
    "Disapproval": (3, 5, 6),
    "Disconnection": (4, 3, 4),
    "Disquietment": (3, 6, 4),
    "Doubt/Confusion": (4, 5, 4),
    "Embarrassment": (3, 6, 3),
    "Engagement": (6, 6, 6),
    "Esteem": (7, 5, 7),
    "Excitement": (8, 8, 7),
    "Fatigue": (4, 2, 3),
    "Fear": (2, 8, 2),
    "Happiness": (9, 7, 7),
    "Pain": (2, 6, 3),
    "Peace": (8, 2, 6),
    "Pleasure": (8, 6, 7),
    "Sadness": (2, 3, 3),
    "Sensitivity": (5, 4, 4),
    "Suffering": (2, 5, 2),
    "Surprise": (6, 8, 5),
    "Sympathy": (6, 4, 6),
    "Yearning": (5, 5, 4),
}
_LABEL_NOISE = 0.08  # probability of dropping one true category, and (separately) of adding a random one
_EXTRA_PERSON = ("extra_unlabelled", "extra_nan_vad")  # defects that add a person to the image


def write_sample(
    out_dir: Path,
    *,
    images: tuple[int, int, int] = (96, 32, 48),
    seed: int = 0,
    image_size: tuple[int, int] = (160, 120),
) -> Path:
    """Write the sample dataset under `out_dir` and return `out_dir`.

    `images` is the number of images of train, val and test (each >= 8); `image_size` is (width, height).
    The same `seed` writes the same annotations and the same pixels.
    """
    out_dir = Path(out_dir)
    if len(images) != 3 or min(images) < 8:
        raise EmoedgeError(f"images {images}: expected 3 counts (train, val, test), each >= 8")
    width, height = int(image_size[0]), int(image_size[1])
    if width < 64 or height < 48:
        raise EmoedgeError(f"image_size {image_size}: expected (width, height) of at least (64, 48)")
    checked(int, seed, "seed", low=0)
    output_folder(out_dir, "sample folder")  # one line before any file is written, not a traceback halfway
    for folder in FOLDERS:
        (out_dir / "emotic" / folder).mkdir(parents=True, exist_ok=True)
    (out_dir / "Annotations").mkdir(parents=True, exist_ok=True)
    (out_dir / "emotic_pre").mkdir(parents=True, exist_ok=True)

    variables: dict[str, np.ndarray] = {}
    for split_index, (split, count) in enumerate(zip(SPLITS, images)):
        rng = np.random.default_rng([seed, split_index])
        entries, rows = _write_split(out_dir, split, count, width, height, rng)
        variables[split] = _struct_array(entries)
        _write_csv(out_dir / "emotic_pre" / f"{split}.csv", rows)

    import scipy.io  # optional dependency (the `train` extra)

    scipy.io.savemat(str(out_dir / "Annotations" / "Annotations.mat"), variables, do_compression=True)
    return out_dir


# ---------------------------------------------------------------------------------------- one split


def _write_split(
    out_dir: Path, split: str, count: int, width: int, height: int, rng: np.random.Generator
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Render and save the images of one split; return the .mat image entries and the CSV rows."""
    moods = rng.permutation(np.arange(count) % len(SCENE_MOODS))
    body_order = rng.permutation(len(BODY_TYPES))
    body_counter = 0
    entries: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    for i in range(count):
        mood = SCENE_MOODS[int(moods[i])]
        folder = FOLDERS[i % len(FOLDERS)]
        filename = f"emoedge_{split}_{i:04d}.jpg"
        defect = _defect(split, i)
        n_people = 1 if defect == "only_unlabelled" else int(rng.integers(1, 4)) + (defect in _EXTRA_PERSON)
        boxes = _layout(n_people, width, height, rng)
        if i == 0:  # the rightmost box runs past the right and bottom edges (staying clear of the others)
            x1, y1, x2, y2 = boxes[-1]
            dx, dy = width + 12 - x2, height + 8 - y2
            boxes[-1] = (x1 + dx, y1 + dy, x2 + dx, y2 + dy)

        image = _render_scene(mood, width, height, rng)
        persons: list[dict[str, Any]] = []
        for j, box in enumerate(boxes):
            body = BODY_TYPES[int(body_order[body_counter % len(BODY_TYPES)])]
            body_counter += 1
            _render_body(image, body, box, rng)
            unlabelled = defect == "only_unlabelled" or (defect == "extra_unlabelled" and j == n_people - 1)
            nan_vad = defect == "extra_nan_vad" and j == n_people - 1
            labels = [] if unlabelled else _labels(body, mood, rng)
            person, row_labels, row_vad = _person(split, labels, box, nan_vad, rng)
            persons.append(person)
            if labels and not nan_vad:
                clipped, _ = clip_box(box, width, height)
                rows.append(
                    [
                        len(rows),
                        folder,
                        filename,
                        [width, height],
                        [_plain(v) for v in clipped],
                        row_labels,
                        row_vad,
                        person["gender"],
                        person["age"],
                    ]
                )
        image = np.clip(image + rng.normal(0.0, 8.0, image.shape), 0, 255).astype(np.uint8)
        # Full-resolution chroma (4:4:4): subsampling would bleed the scene's colour into the body crops.
        params = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        cv2.imwrite(str(out_dir / "emotic" / folder / filename), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        entries.append(
            {
                "filename": filename,
                "folder": folder,
                "image_size": {"n_col": width, "n_row": height},
                "original_database": {"name": folder.split("/")[0]},
                "person": _struct_array(persons),
            }
        )
    return entries, rows


def _defect(split: str, i: int) -> str:
    table = {
        ("train", 1): "extra_unlabelled",
        ("train", 2): "extra_nan_vad",
        ("train", 3): "only_unlabelled",
        ("val", 1): "extra_unlabelled",
        ("test", 1): "extra_nan_vad",
    }
    return table.get((split, i), "")


def _labels(body: BodyType, mood: SceneMood, rng: np.random.Generator) -> list[str]:
    """Body-implied ∪ scene-implied categories, with a little label noise; never empty."""
    labels = list(body.categories) + list(mood.categories)
    if rng.random() < _LABEL_NOISE:
        labels.pop(int(rng.integers(len(labels))))
    if rng.random() < _LABEL_NOISE:
        extra = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        if extra not in labels:
            labels.append(extra)
    return labels


def _vad(labels: list[str], rng: np.random.Generator) -> list[int]:
    """Integer VAD on 1..10 from the categories' prototypes plus noise (as a single annotator gives)."""
    if labels:
        mean = np.mean([_VAD_PROTOTYPE[c] for c in labels], axis=0)
    else:
        mean = np.full(3, 5.0)
    return [int(v) for v in np.clip(np.rint(mean + rng.normal(0.0, 0.7, 3)), 1, 10)]


def _person(
    split: str, labels: list[str], box: tuple[int, int, int, int], nan_vad: bool, rng: np.random.Generator
) -> tuple[dict[str, Any], list[str], list[float]]:
    """One person struct shaped like the real file's, plus the labels and VAD its CSV row carries."""
    gender = ("Male", "Female")[int(rng.integers(2))]
    age = ("Adult", "Teenager", "Kid")[int(rng.integers(3))]
    bbox = np.asarray(box, dtype=float)
    if split == "train":
        vad: list[Any] = _vad(labels, rng)
        if nan_vad:
            vad[0] = float("nan")
        person = {
            "body_bbox": bbox,
            "annotations_categories": {"categories": _cell(labels)},
            "annotations_continuous": dict(zip(("valence", "arousal", "dominance"), vad)),
            "gender": gender,
            "age": age,
        }
        return person, labels, vad
    # val/test: one struct per annotator, plus the combined (union / mean) labels.
    n_annotators = int(rng.integers(2, 4))
    per_annotator: list[list[str]] = [[c for c in labels if rng.random() < 0.7] for _ in range(n_annotators)]
    for c in labels:  # every label is given by at least one annotator: the union is `labels`
        if not any(c in a for a in per_annotator):
            per_annotator[int(rng.integers(n_annotators))].append(c)
    for a in per_annotator:
        if labels and not a:
            a.append(labels[int(rng.integers(len(labels)))])
    combined = [c for c in labels if any(c in a for a in per_annotator)]
    vads = [_vad(labels, rng) for _ in range(n_annotators)]
    mean = [float(v) for v in np.mean(vads, axis=0)]
    if nan_vad:
        mean[0] = float("nan")
    person = {
        "body_bbox": bbox,
        "annotations_categories": _struct_array([{"categories": _cell(a)} for a in per_annotator]),
        "combined_categories": _cell(combined),
        "annotations_continuous": _struct_array([dict(zip(("valence", "arousal", "dominance"), v)) for v in vads]),
        "combined_continuous": dict(zip(("valence", "arousal", "dominance"), mean)),
        "gender": gender,
        "age": age,
    }
    return person, combined, mean


# ----------------------------------------------------------------------------------------- drawing


def _layout(n: int, width: int, height: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """`n` non-overlapping integer boxes, one per vertical slot of the image."""
    slot = width / n
    boxes = []
    for k in range(n):
        h = max(20, int(height * rng.uniform(0.45, 0.85)))
        w = max(12, int(min(slot * rng.uniform(0.55, 0.9), h * rng.uniform(0.4, 0.8))))
        x1 = int(k * slot + rng.uniform(0, slot - w))
        y1 = int(rng.uniform(0, height - h))
        boxes.append((x1, y1, x1 + w, y1 + h))
    return boxes


def _render_scene(mood: SceneMood, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """The mood's colour and texture over the whole image (float32 RGB), with per-image jitter."""
    yy, xx = np.mgrid[0:height, 0:width]
    period = int(rng.integers(9, 14))
    phase = int(rng.integers(period))
    if mood.pattern == "dots":
        mask = ((xx + phase) % period < period // 3) & ((yy + phase) % period < period // 3)
    elif mood.pattern == "diagonal":
        mask = (xx + yy + phase) % period < period // 2
    elif mood.pattern == "horizontal":
        mask = (yy + phase) % period < period // 2
    elif mood.pattern == "vertical":
        mask = (xx + phase) % period < period // 2
    else:  # checker
        mask = (((xx + phase) // period) + ((yy + phase) // period)) % 2 == 0
    base = np.asarray(mood.color, dtype=np.float32) + rng.uniform(-18, 18, 3)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = base
    image[mask] = base * 0.6 + 40.0
    return image


def _render_body(image: np.ndarray, body: BodyType, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """A figure that fills its box (clipped to the image): colour, oriented stripes and a head, in place."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if cx2 <= cx1 or cy2 <= cy1:
        return
    yy, xx = np.mgrid[cy1:cy2, cx1:cx2]
    theta = np.deg2rad(body.stripe_angle)
    period = 7.0
    stripes = ((xx * np.cos(theta) + yy * np.sin(theta)) % period) < period / 2
    color = np.asarray(body.color, dtype=np.float32) + rng.uniform(-15, 15, 3)
    patch = np.empty((cy2 - cy1, cx2 - cx1, 3), dtype=np.float32)
    patch[:] = color
    patch[stripes] = color * 0.55
    # A head: a lighter disc in the top part of the box.
    radius = max(3.0, 0.22 * min(x2 - x1, y2 - y1))
    head = (xx - (x1 + x2) / 2) ** 2 + (yy - (y1 + radius * 1.2)) ** 2 < radius**2
    patch[head] = np.minimum(color * 0.5 + 130.0, 255.0)
    image[cy1:cy2, cx1:cx2] = patch


# --------------------------------------------------------------------------------------- file formats


def _cell(strings: list[str]) -> np.ndarray:
    """A MATLAB cell array of strings (1 x n)."""
    cell = np.empty((1, len(strings)), dtype=object)
    for k, s in enumerate(strings):
        cell[0, k] = s
    return cell


def _struct_array(items: list[dict[str, Any]]) -> np.ndarray:
    """A MATLAB 1 x n struct array from dicts sharing their keys (scipy squeezes 1 x 1 to one struct)."""
    fields = list(items[0]) if items else []
    array = np.empty((1, len(items)), dtype=[(f, object) for f in fields] or [("empty", object)])
    for k, item in enumerate(items):
        for f in fields:
            array[0, k][f] = item[f]
    return array


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _write_csv(path: Path, rows: list[list[Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
