"""Benchmark: how many world images this CPU would draw with other bits if the noise tile were smoothed by numpy.

    python bench/world_bits.py [--images 20]

Renders images 0..N-1 of city a's validation split under every condition twice: with the noise tile as the world
makes it (`pipeline.world.blur`, one fixed order of sums) and with the tile smoothed by `np.convolve`, as before,
whose float32 sums go through the OpenBLAS dot kernel this CPU selects (`OPENBLAS_CORETYPE` picks another). On a CPU
whose kernel sums as the AVX2 one does, nothing differs. Counts the images and the pixels whose RGB differ; prints a
table and writes reports/bench/world_bits.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from provenance import commit, machine

from pipeline.world import CONDITIONS, raster, render, weather

OUT = Path("reports/bench/world_bits.json")


def convolve_tiles(height: int = 512, width: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """`raster.noise_tiles` with np.convolve's smoothing (the code before pipeline/world/blur.py)."""
    fine = raster.noise_tiles(height, width)[0]
    rng = np.random.default_rng(20240229)
    rng.uniform(-1, 1, (height, width))  # the fine tile's draws
    coarse = np.kron(rng.uniform(-1, 1, (height // 16 + 2, width // 16 + 2)).astype(np.float32),
                     np.ones((16, 16), np.float32))  # fmt: skip
    kernel = np.hanning(33).astype(np.float32)
    kernel /= kernel.sum()
    for axis in (0, 1):
        coarse = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), axis, coarse)
    coarse = coarse[:height, :width]
    return fine, coarse / np.abs(coarse).max()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    fixed = {c: [render(0, "a", c, "val", i).image for i in range(args.images)] for c in CONDITIONS}
    tiles = convolve_tiles()
    raster.noise_tiles = weather.noise_tiles = lambda *_: tiles  # the renderer's two readers of the tile
    rows = []
    for condition in CONDITIONS:
        differ = [(render(0, "a", condition, "val", i).image != fixed[condition][i]).any(axis=2)
                  for i in range(args.images)]  # fmt: skip
        rows.append({"condition": condition, "images": args.images,
                     "images_differing": sum(bool(d.any()) for d in differ),
                     "pixels_differing": int(sum(d.sum() for d in differ))})  # fmt: skip
    print(f"{'condition':<10}{'images':>8}{'differing':>11}{'pixels':>8}")
    for r in rows:
        print(f"{r['condition']:<10}{r['images']:>8}{r['images_differing']:>11}{r['pixels_differing']:>8}")
    total = {k: sum(r[k] for r in rows) for k in ("images", "images_differing", "pixels_differing")}
    print(f"{'all':<10}{total['images']:>8}{total['images_differing']:>11}{total['pixels_differing']:>8}")
    result = {"rows": rows, "total": total, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "as detected"),
              "commit": commit(), "machine": machine()}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
