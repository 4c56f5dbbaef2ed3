"""Benchmark: procedural world rendering throughput on one core, per condition, with and without writing the files.

    python bench/world.py [--images 40] [--height 256] [--width 512]

Prints a table and writes reports/bench/world.json. One process, one thread: the data stage runs one such process
per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402

from pipeline.domains import _render_one  # noqa: E402
from pipeline.world import CONDITIONS, render  # noqa: E402

cv2.setNumThreads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    args = parser.parse_args()
    cfg = {"seed": 0, "height": args.height, "width": args.width}
    render(0, "a", "clear", "bench", 0, args.height, args.width)  # warm the noise tiles
    rows = []
    for city in ("a", "b"):
        for condition in CONDITIONS:
            start = time.perf_counter()
            for i in range(args.images):
                render(0, city, condition, "bench", i, args.height, args.width)
            rendered = args.images / (time.perf_counter() - start)
            spec = {"format": "world", "city": city, "condition": condition}
            with tempfile.TemporaryDirectory() as out:
                for sub in ("images", "labels", "depth"):
                    (Path(out) / sub / "bench").mkdir(parents=True)
                start = time.perf_counter()
                for i in range(args.images):
                    _render_one(("bench", spec, cfg, "bench", i, out))
                written = args.images / (time.perf_counter() - start)
            rows.append({"city": city, "condition": condition, "render_img_s": rendered, "render_write_img_s": written})
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("render_img_s", "render_write_img_s")}
    print(f"world rendering at {args.height}x{args.width}, {args.images} images per domain, one core")
    print(f"{'city':<5}{'condition':<10}{'render img/s':>14}{'+ write img/s':>15}")
    for r in rows:
        print(f"{r['city']:<5}{r['condition']:<10}{r['render_img_s']:>14.1f}{r['render_write_img_s']:>15.1f}")
    print(f"{'mean':<15}{mean['render_img_s']:>14.1f}{mean['render_write_img_s']:>15.1f}")
    out = Path("reports/bench/world.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"height": args.height, "width": args.width, "images_per_domain": args.images, "rows": rows, "mean": mean,
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}}  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
