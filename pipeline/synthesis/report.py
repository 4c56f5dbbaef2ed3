"""Contact sheets for people to look at: reports/synthesize/<condition>.png, a few images of each condition.

A sheet has a row of generated images; img2img and depth2img add the source images and the source label and boxes
(boxes alone where the source has no label) over the generated image, to see at a glance whether they still fit.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from pipeline import packed
from pipeline.sheets import contact_sheet, draw_boxes, overlay, read_rgb, slug, write_png

TITLE_WIDTH = 180


def write_sheets(entries: list[tuple[dict, dict]], folder: Path, images: int, tile_height: int) -> list[Path]:
    """One sheet per condition in `folder` from (manifest row, source row) pairs (paths resolved), in order."""
    if images == 0:
        return []
    by_condition: dict[str, list[tuple[dict, dict]]] = {}
    for made, source in entries:
        by_condition.setdefault(made["condition"], []).append((made, source))
    written = []
    for condition, pairs in by_condition.items():
        pairs = pairs[:images]
        made = [read_rgb(m["image"]) for m, _ in pairs]
        rows = [(f"{condition}\n{pairs[0][0]['mode']}", made)]
        labeled = [(image, m, s) for image, (m, s) in zip(made, pairs)
                   if m["label"] is not None or m["boxes"] is not None]  # fmt: skip
        if labeled:
            rows.append(("source", [read_rgb(s["image"]) for _, _, s in labeled]))
            rows.append(("source label\nand boxes", [draw_boxes(_overlay(image, m["label"]), m["boxes"])
                                                      for image, m, _ in labeled]))  # fmt: skip
        path = folder / f"{slug(condition)}.png"
        write_png(contact_sheet(rows, tile_height, TITLE_WIDTH), path)
        written.append(path)
    return written


def _overlay(image, label: str | None):
    return image if label is None else overlay(image, packed.imread(label, cv2.IMREAD_UNCHANGED))
