"""What `evaluate` draws for detection: a gallery of predicted boxes per domain (the tables and metrics are
`pipeline.tables`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.det.data import to_boxes
from pipeline.sheets import contact_sheet, draw_boxes, read_rgb, write_png

SHOWN_SCORE = 0.5  # boxes drawn in the gallery: score at least this


def gallery(rows: pd.DataFrame, detections: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
            classes: list[str], path: Path, tile_height: int = 96) -> None:  # fmt: skip
    """The manifest `rows`' images with their ground-truth boxes, then each model's boxes scoring >= SHOWN_SCORE."""
    images = [read_rgb(p) for p in rows["image"]]
    sheet = [("ground truth", [draw_boxes(image, boxes) for image, boxes in zip(images, rows["boxes"])])]
    for name, found in detections.items():
        tiles = [draw_boxes(image, to_boxes(b[s >= SHOWN_SCORE], c[s >= SHOWN_SCORE], classes))
                 for image, (b, s, c) in zip(images, found)]  # fmt: skip
        sheet.append((f"{name}\n(score >= {SHOWN_SCORE})", tiles))
    write_png(contact_sheet(sheet, tile_height=tile_height), path)


def draw(out: Path, rows: dict[str, pd.DataFrame], kept: dict[str, dict[str, list]], per_class: pd.DataFrame,
         targets: list[str]) -> None:  # fmt: skip
    """`evaluate`'s pictures: a gallery per domain (its `rows` and each method's `kept` detections) in
    `out/gallery/`, made even when empty (DVC expects it)."""
    (out / "gallery").mkdir(parents=True, exist_ok=True)
    classes = per_class["class"].drop_duplicates().tolist()
    for domain, by_method in kept.items():
        gallery(rows[domain], by_method, classes, out / "gallery" / f"{domain}.png")
