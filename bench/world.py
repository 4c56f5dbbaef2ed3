"""Benchmark: procedural world rendering throughput on one core, per condition, with and without writing the files.

    python bench/world.py [--images 40] [--repeats 3] [--height 256] [--width 512]

Prints a table and writes reports/bench/world.json. One process, one thread: the data stage runs one such process
per core. Each number is the best of `--repeats` runs, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
from provenance import machine  # noqa: E402

from pipeline.domains import render_one  # noqa: E402
from pipeline.world import CONDITIONS, render  # noqa: E402

cv2.setNumThreads(1)


def _best(repeats: int, work, images: int) -> float:
    """Images per second of the fastest of `repeats` passes of `work(i)` over `images` indices."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(images):
            work(i)
        best = min(best, time.perf_counter() - start)
    return images / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    args = parser.parse_args()
    cfg = {"seed": 0, "height": args.height, "width": args.width}
    render(0, "a", "clear", "bench", 0, args.height, args.width)  # warm the noise tiles
    rows = []
    for city in ("a", "b"):
        for condition in CONDITIONS:
            spec = {"format": "world", "city": city, "condition": condition}
            rendered = _best(args.repeats, lambda i: render(0, city, condition, "bench", i, args.height, args.width),
                             args.images)  # fmt: skip
            with tempfile.TemporaryDirectory() as out:
                for sub in ("images", "labels", "depth"):
                    (Path(out) / sub / "bench").mkdir(parents=True)
                written = _best(args.repeats, lambda i: render_one(("bench", spec, cfg, "bench", i, out)), args.images)
            rows.append({"city": city, "condition": condition, "render_img_s": rendered, "render_write_img_s": written})
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("render_img_s", "render_write_img_s")}
    print(f"world rendering at {args.height}x{args.width}, {args.images} images per domain, best of {args.repeats}, one core")
    print(f"{'city':<5}{'condition':<10}{'render img/s':>14}{'+ write img/s':>15}")
    for r in rows:
        print(f"{r['city']:<5}{r['condition']:<10}{r['render_img_s']:>14.1f}{r['render_write_img_s']:>15.1f}")
    print(f"{'mean':<15}{mean['render_img_s']:>14.1f}{mean['render_write_img_s']:>15.1f}")
    out = Path("reports/bench/world.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"height": args.height, "width": args.width, "images_per_domain": args.images, "repeats": args.repeats,
              "rows": rows, "mean": mean,
              "machine": machine()}  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
