"""Contact sheets: titled rows of image tiles, label overlays and boxes, for people to look at."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from pipeline import packed
from pipeline.atomic import atomic_path
from pipeline.labels import colorize


def overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The label's class colours blended over the image (pixels labelled 'ignore' keep the image)."""
    colors = colorize(label).astype(np.float32)
    known = (label != 255)[..., None]
    blended = np.where(known, (1 - alpha) * image + alpha * colors, image)
    return blended.astype(np.uint8)


def draw_boxes(image: np.ndarray, boxes: list[dict] | None) -> np.ndarray:
    """The image with each box outlined and named."""
    out = np.ascontiguousarray(image).copy()
    for box in [] if boxes is None else boxes:
        p1, p2 = (int(box["x1"]), int(box["y1"])), (int(box["x2"]) - 1, int(box["y2"]) - 1)
        cv2.rectangle(out, p1, p2, (255, 255, 0), 1)
        cv2.putText(out, box["label"], (p1[0], max(p1[1] - 2, 8)), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 0), 1)
    return out


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], tile_height: int = 128, title_width: int = 150) -> np.ndarray:
    """A grid with one titled row per entry; tiles are resized to `tile_height`, rows padded to the widest."""
    rendered = []
    for title, tiles in rows:
        resized = [cv2.resize(t, (round(t.shape[1] * tile_height / t.shape[0]), tile_height)) for t in tiles]
        band = np.full((tile_height, title_width, 3), 255, np.uint8)
        for k, line in enumerate(title.split("\n")):
            cv2.putText(band, line, (6, 22 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
        rendered.append(np.concatenate([band, *resized], axis=1))
    width = max(r.shape[1] for r in rendered)
    padded = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rendered]
    return np.concatenate(padded, axis=0)


def slug(condition: str) -> str:
    """A file name for a condition word: `fog/mist` -> `fog-mist`, `harsh light` -> `harsh-light`."""
    return re.sub(r"[^\w.]+", "-", condition).strip("-") or "no-condition"


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file, or an archive's member (`pipeline.packed`), as RGB."""
    return cv2.cvtColor(packed.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def write_png(image: np.ndarray, path: str | Path) -> None:
    """Write an RGB image as PNG, atomically."""
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode {path}")
        tmp.write_bytes(data.tobytes())
