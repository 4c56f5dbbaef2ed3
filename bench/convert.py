"""Benchmark: the data stage converting a Cityscapes-layout tree of full-size images, with 1 and 2 workers.

    python bench/convert.py [--images 500] [--height 1024] [--width 2048] [--repeats 2] [--workers 1 2]

Writes (once; reruns reuse it) a tree in Cityscapes' layout under /tmp/dgsynth-bench-cityscapes-<images>-<h>x<w>/:
`leftImg8bit/val/<city>/<id>_leftImg8bit.png` and `gtFine/val/<city>/<id>_gtFine_labelIds.png` (the files the reader
reads; no colour, instance or polygon files). Each label is a blocky map of random labelIds, each image its classes'
colours plus a little noise, so that a PNG is about as large as Cityscapes' (2-3 MB). Then, in a temporary project
folder whose params.yaml declares the tree as a domain, times `dgsynth data <domain> --workers N` as a subprocess
for each N (start-up included; the start-up is timed too, as converting the first image alone), the best of
`--repeats`, and checks that every N wrote the same bytes (the manifest's sha256 column and every file). Prints a
table and writes reports/bench/convert.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml
from provenance import commit, machine

OUT = Path("reports/bench/convert.json")
CITIES = ("frankfurt", "lindau", "munster")  # Cityscapes' val cities
DOMAIN = "cityscapes_bench"
ONE = "cityscapes_bench_one"  # the first image alone: start-up, scanning the tree and one image
DGSYNTH = Path(sys.executable).parent / "dgsynth"


def tree_root(images: int, height: int, width: int) -> Path:
    """The cached tree for these sizes, written first if it is not complete."""
    root = Path(tempfile.gettempdir()) / f"dgsynth-bench-cityscapes-{images}-{height}x{width}"
    if (root / "complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (34, 3), np.uint8)
    noise = rng.integers(-4, 5, (height, width, 3), np.int16)
    for i in range(images):
        city = CITIES[i % len(CITIES)]
        key = f"{city}_{i:06d}_000019"
        blocks = rng.integers(0, 34, (height // 64, width // 64), np.uint8)
        label = cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST)
        shift = rng.integers(0, height), rng.integers(0, width)
        image = np.clip(colours[label] + np.roll(noise, shift, axis=(0, 1)), 0, 255).astype(np.uint8)
        for path, pixels in ((root / "leftImg8bit" / "val" / city / f"{key}_leftImg8bit.png", image),
                             (root / "gtFine" / "val" / city / f"{key}_gtFine_labelIds.png", label)):  # fmt: skip
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), pixels)
    (root / "complete").write_text(f"{images} images\n")
    return root


def run(args: list[str], cwd: Path) -> float:
    """Wall seconds of `args` run in `cwd`; a failure raises with its output."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - start


def convert(project: Path, workers: int, repeats: int) -> float:
    """Seconds of the fastest of `repeats` conversions, each from an empty data/ folder."""
    best = float("inf")
    for _ in range(repeats):
        shutil.rmtree(project / "data", ignore_errors=True)
        best = min(best, run([str(DGSYNTH), "data", DOMAIN, "--workers", str(workers)], project))
    return best


def written(project: Path) -> dict[str, bytes]:
    out = project / "data" / "domains" / DOMAIN
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    root = tree_root(args.images, args.height, args.width)
    made = time.perf_counter() - start
    image_bytes = sum(p.stat().st_size for p in (root / "leftImg8bit").rglob("*.png")) // args.images
    load_before = os.getloadavg()
    rows, outputs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        spec = {"format": "cityscapes", "root": str(root), "splits": {"val": None}}
        one = {**spec, "splits": {"val": 1}}
        (project / "params.yaml").write_text(yaml.safe_dump({"data": {"domains": {DOMAIN: spec, ONE: one}}}))
        startup = min(run([str(DGSYNTH), "data", ONE, "--workers", "1"], project) for _ in range(args.repeats))
        for workers in args.workers:
            seconds = convert(project, workers, args.repeats)
            outputs[workers] = written(project)
            sha = pd.read_parquet(project / "data" / "domains" / DOMAIN / "val.parquet")["sha256"].tolist()
            rows.append({"workers": workers, "seconds": seconds, "images_per_s": args.images / seconds,
                         "images_per_s_per_core": args.images / seconds / workers,
                         "images_per_s_net_of_startup": args.images / (seconds - startup), "sha256": sha})  # fmt: skip
    load_after = os.getloadavg()
    first = rows[0]
    identical = all(r["sha256"] == first["sha256"] and outputs[r["workers"]] == outputs[first["workers"]] for r in rows)
    print(f"dgsynth data: {args.images} Cityscapes images at {args.height}x{args.width} ({image_bytes / 1e6:.1f} MB "
          f"PNGs), best of {args.repeats}; start-up {startup:.1f} s; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after, {os.cpu_count()} cores")  # fmt: skip
    print(f"{'workers':>8}{'s':>8}{'img/s':>8}{'img/s/core':>12}{'net img/s':>11}{'vs 1':>7}")
    for r in rows:
        r["speedup"] = first["seconds"] / r["seconds"]
        print(f"{r['workers']:>8}{r['seconds']:>8.1f}{r['images_per_s']:>8.2f}{r['images_per_s_per_core']:>12.2f}"
              f"{r['images_per_s_net_of_startup']:>11.2f}{r['speedup']:>6.2f}x")
        del r["sha256"]
    print(f"outputs byte-identical across workers {args.workers}: {identical} ({len(outputs[first['workers']])} files)")
    result = {"images": args.images, "height": args.height, "width": args.width, "repeats": args.repeats,
              "image_file_bytes": image_bytes, "tree": str(root), "tree_written_s": made, "startup_s": startup,
              "rows": rows, "byte_identical": identical, "files_compared": len(outputs[first["workers"]]),
              "command": " ".join(["python", *sys.argv]), "commit": commit(),
              "machine": machine(load_average_before=load_before, load_average_after=load_after)}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
