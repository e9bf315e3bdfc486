"""A short demo video made from a dataset's images, with the matching boxes file, for `emoedge demo`.

Why: the offline demo has no camera and no video, and without internet no detector weights; a clip built from the
annotated sample images, with the annotation boxes as the "detections", exercises the whole runtime (decoding,
tracking ids, batched crops, one engine call per frame, smoothing, rendering, the event log) on data the model was
trained for. Each image is held for a few frames while the view pans across it, so persons move and their track
ids must stay stable while they do.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np

from emoedge.data.emotic import EmoticWarning, image_path, load_split
from emoedge.errors import EmoedgeError
from emoedge.fileio import atomic_write_text
from emoedge.runtime.sinks import VideoSink

ZOOM = 1.25  # the view shows 1/ZOOM of the image, so there is room to pan
MIN_SIDE = 4.0  # pixels: a box panned (almost) out of view is left out of that frame


def make_demo_clip(
    data_root: Path,
    out_dir: Path,
    *,
    split: str = "test",
    frames_per_image: int = 8,
    size: tuple[int, int] = (640, 480),
    images: int = 12,
    fps: float = 10.0,
) -> tuple[Path, Path]:
    """Write `out_dir/demo_<split>.mp4` and `out_dir/demo_<split>_boxes.json`; return both paths.

    The first `images` images of `split` are each held for `frames_per_image` frames of `size` (width, height),
    panning horizontally, alternately left and right. Every annotated person gets one track id for all its frames.
    """
    if frames_per_image < 2 or images < 1:
        raise EmoedgeError(f"demo clip: frames_per_image {frames_per_image} must be >= 2 and images {images} >= 1")
    with warnings.catch_warnings():  # the dataset's known defects are reported by `emoedge data check`
        warnings.simplefilter("ignore", EmoticWarning)
        records = load_split(Path(data_root), split).records
    by_image: dict[Path, list[tuple[float, float, float, float]]] = {}
    for rec in records:
        if len(by_image) < images or image_path(data_root, rec) in by_image:
            by_image.setdefault(image_path(data_root, rec), []).append(rec.bbox)
    if not by_image:
        raise EmoedgeError(f"demo clip: split {split!r} of {data_root} has no annotated person")

    out_dir = Path(out_dir)
    clip, boxes_path = out_dir / f"demo_{split}.mp4", out_dir / f"demo_{split}_boxes.json"
    width, height = int(size[0]), int(size[1])
    frames: list[dict[str, object]] = []
    next_id = 1
    with VideoSink(clip, fps, (width, height)) as video:
        for k, (path, boxes) in enumerate(by_image.items()):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise EmoedgeError(f"demo clip: cannot read image {path}")
            ids = list(range(next_id, next_id + len(boxes)))
            next_id += len(boxes)
            for t in range(frames_per_image):
                pan = t / (frames_per_image - 1)
                position = pan if k % 2 == 0 else 1 - pan
                view, shown, shown_ids = _pan(image, np.asarray(boxes), ids, (width, height), position)
                frames.append({"index": len(frames), "boxes": shown, "ids": shown_ids})
                video.write(view)
    atomic_write_text(boxes_path, json.dumps({"frames": frames}, separators=(",", ":")) + "\n")
    return clip, boxes_path


def _pan(
    image: np.ndarray, boxes: np.ndarray, ids: list[int], size: tuple[int, int], pan: float
) -> tuple[np.ndarray, list[list[float]], list[int]]:
    """The view at pan position 0..1 (left to right, vertically centred) and the boxes visible in it."""
    width, height = size
    scale = max(width / image.shape[1], height / image.shape[0]) * ZOOM
    ox = pan * (image.shape[1] * scale - width)
    oy = 0.5 * (image.shape[0] * scale - height)
    matrix = np.array([[scale, 0.0, -ox], [0.0, scale, -oy]])
    view = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    moved = boxes * scale - np.array([ox, oy, ox, oy])
    moved = np.clip(moved, 0.0, [width, height, width, height])
    keep = (moved[:, 2] - moved[:, 0] >= MIN_SIDE) & (moved[:, 3] - moved[:, 1] >= MIN_SIDE)
    shown = [[round(float(v), 1) for v in box] for box in moved[keep]]
    return view, shown, [i for i, k in zip(ids, keep) if k]
