"""Benchmark: converting a real-data-set tree with the full decode check of every image, against a header-only read.

    python bench/readers.py [--images 24] [--repeats 2] [--height 1024] [--width 2048] [--workers 1 2]

Writes a tree of `--images` procedural-world images at Cityscapes' size (rendered at a quarter of it, enlarged, with
a little sensor noise so that files are about as large as Cityscapes') in two layouts, Cityscapes (PNG images) and
BDD100K (JPEG images), both with PNG labels, into a temporary folder; then times `read_split` over each: "header" is the
reader before the decode check (size from the header; the same one read of the bytes for the sha256), "decode" the
reader now, with each number of `--workers`. Each time is the best of `--repeats` runs, since these machines are noisy.
Prints a table and writes reports/bench/readers.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
from PIL import Image

from provenance import machine

from pipeline.labels import CITYSCAPES_ID_TO_TRAIN_ID, IGNORE
from pipeline.readers import common, read_split
from pipeline.world import render

OUT = Path("reports/bench/readers.json")
LAYOUTS = {  # format: split, image path and label path (relative to the root, by id)
    "cityscapes": ("val", "leftImg8bit/val/bench/{}_leftImg8bit.png", "gtFine/val/bench/{}_gtFine_labelIds.png"),
    "bdd100k": ("val", "images/10k/val/{}.jpg", "labels/sem_seg/masks/val/{}.png"),
}
TRAIN_TO_LABEL_ID = {t: i for i, t in sorted(CITYSCAPES_ID_TO_TRAIN_ID.items(), reverse=True) if t != IGNORE}


def header_size(path: Path, data: bytes) -> tuple[int, int]:
    """The check before: (width, height) from the header alone."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def write_tree(root: Path, images: int, height: int, width: int) -> dict[str, int]:
    """Both layouts under `root`; the mean image file size per format, in bytes."""
    to_label_id = np.array([TRAIN_TO_LABEL_ID.get(t, 0) for t in range(256)], dtype=np.uint8)
    sizes = {fmt: 0 for fmt in LAYOUTS}
    rng = np.random.default_rng(0)
    for i in range(images):
        shot = render(0, "a", "clear", "bench", i, height // 4, width // 4)
        image = cv2.resize(cv2.cvtColor(shot.image, cv2.COLOR_RGB2BGR), (width, height), interpolation=cv2.INTER_LINEAR)
        image = np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)
        label = cv2.resize(shot.label, (width, height), interpolation=cv2.INTER_NEAREST)
        for fmt, (_, image_path, label_path) in LAYOUTS.items():
            key = f"frame_{i:05d}"
            paths = root / fmt / image_path.format(key), root / fmt / label_path.format(key)
            for path in paths:
                path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(paths[0]), image)
            cv2.imwrite(str(paths[1]), to_label_id[label] if fmt == "cityscapes" else label)
            sizes[fmt] += paths[0].stat().st_size
    return {fmt: total // images for fmt, total in sizes.items()}


def best_time(repeats: int, fmt: str, root: Path, workers: int) -> float:
    """Seconds of the fastest of `repeats` conversions of the tree, each into a fresh folder."""
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            read_split(fmt, root, LAYOUTS[fmt][0], Path(out), workers=workers)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        file_bytes = write_tree(root, args.images, args.height, args.width)
        for fmt in LAYOUTS:
            with mock.patch.object(common, "decoded_size", header_size):
                runs = [("header", 1, best_time(args.repeats, fmt, root / fmt, 1))]
            runs += [("decode", w, best_time(args.repeats, fmt, root / fmt, w)) for w in args.workers]
            for check, workers, seconds in runs:
                rows.append({"format": fmt, "check": check, "workers": workers, "seconds": seconds,
                             "ms_per_image": 1000 * seconds / args.images, "images_per_s": args.images / seconds})
    print(f"converting {args.images} images at {args.height}x{args.width}, best of {args.repeats} "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end)")
    print(f"{'format':<12}{'check':<8}{'workers':>8}{'s':>8}{'ms/img':>9}{'img/s':>8}{'vs header':>11}")
    for row in rows:
        base = next(r for r in rows if r["format"] == row["format"] and r["check"] == "header")
        row["vs_header"] = row["seconds"] / base["seconds"]
        print(f"{row['format']:<12}{row['check']:<8}{row['workers']:>8}{row['seconds']:>8.2f}"
              f"{row['ms_per_image']:>9.1f}{row['images_per_s']:>8.1f}{row['vs_header']:>10.2f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result = {"images": args.images, "height": args.height, "width": args.width, "repeats": args.repeats,
              "image_file_bytes": file_bytes, "rows": rows,
              "machine": machine(load_average_1min=os.getloadavg()[0])}  # fmt: skip
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
