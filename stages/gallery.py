"""DVC stage `gallery`: a contact sheet of every domain (images, one label overlay with boxes) for the README."""

from __future__ import annotations

from pathlib import Path

import cv2

from pipeline.errors import InputError, whole
from pipeline.manifest import read_manifest
from pipeline.sheets import contact_sheet, draw_boxes, overlay, read_rgb, write_png
from stages import params

OUT = Path("reports/data/gallery.png")


def run() -> str:
    data = params("data", required=("source", "targets", "domains"))
    cfg = params("gallery", required=("split", "images", "tile_height"))
    whole(cfg["images"], "gallery.images")
    whole(cfg["tile_height"], "gallery.tile_height")
    if data["source"] in data["targets"]:  # it would be scored on its own split as a target, in the target mean
        raise InputError("params.yaml data.targets", f"lists the source {data['source']!r}",
                         "remove it: evaluate scores the source's validation split on its own, and a target is a "
                         "domain the models do not train on")  # fmt: skip
    rows = []
    for name in [data["source"], *data["targets"]]:
        if name not in data["domains"]:
            raise InputError("params.yaml data", f"source or target {name!r} is not in data.domains",
                             "add it under data.domains or remove it from data.source/targets")  # fmt: skip
        splits = data["domains"][name]["splits"]
        split = cfg["split"] if cfg["split"] in splits else next(iter(splits))
        path = Path("data/domains") / name / f"{split}.parquet"
        frame = read_manifest(path).head(cfg["images"])
        if frame.empty:
            raise InputError(path, "no images", f"give data.domains.{name}.splits.{split} at least one image")
        tiles = [read_rgb(p) for p in frame["image"]]
        first = frame.iloc[0]
        if first["label"] is not None:
            label = cv2.imread(first["label"], cv2.IMREAD_UNCHANGED)
            tiles.append(draw_boxes(overlay(tiles[0], label), first["boxes"]))
        role = "source" if name == data["source"] else "target"
        rows.append((f"{name}\n{role}, {split}\n{first['condition']}", tiles))
    write_png(contact_sheet(rows, cfg["tile_height"]), OUT)
    return f"wrote {OUT}"
