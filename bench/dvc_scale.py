"""Benchmark: no-op `dvc status` and `dvc repro` over a synthesize output of many images, in two layouts.

    python bench/dvc_scale.py [--images 50000] [--shard-size 256] [--repeats 3] [--keep DIR]

In a temporary git + DVC repo (outside the project), one stage has `data/synthetic` as its out, shaped as the
synthesize stage writes it (`pipeline/synthesis/shards.py`: shards of `shard_size` images, each image with its
img2img label, a manifest per shard, train.parquet); the images are 8x16 PNGs of random pixels, so no two files
share a hash. Layouts: "packed" is the stage's, each shard's PNGs in one uncompressed tar (`shard-XXXXX.tar`, written
by `pipeline.packed.pack`); "files" has the same PNG bytes as one file per image and label in a folder per shard
(the stage's layout before it packed). The bench writes the files, records them with `dvc commit`, then times a
no-op `dvc status` and a no-op `dvc repro` (the median of `--repeats` each).
Target: both at most 3 s at 50,000 images. Prints a table and writes reports/bench/dvc_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import packed
from pipeline.synthesis.shards import Shard, image_name, label_name, packed_name, plan
from provenance import commit, machine

OUT = Path("reports/bench/dvc_scale.json")
LAYOUTS = ("files", "packed")
TARGET_S = 3.0
UP_TO_DATE = ("Data and pipelines are up to date.", "didn't change, skipping")
STAGE = """stages:
  synthesize:
    cmd: test -f data/synthetic/train.parquet  # the bench makes the out; the stage only checks it is there
    deps: [spec.json]
    outs: [data/synthetic]
"""


def run(args: list[str], cwd: Path, timeout: float = 1800) -> str:
    """stdout of `args` run in `cwd`; a failure raises with its output."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def shard_files(shard: Shard, rng: np.random.Generator) -> dict[str, bytes]:
    """The PNG bytes of a shard's images and labels, by their path under data/synthetic."""
    files = {}
    for i in shard.rows:
        row_id = f"{i:07d}"
        files[image_name(shard, row_id)] = cv2.imencode(".png", rng.integers(0, 256, (8, 16, 3), np.uint8))[1].tobytes()
        files[label_name(shard, row_id)] = cv2.imencode(".png", rng.integers(0, 19, (8, 16), np.uint8))[1].tobytes()
    return files


def write_output(root: Path, layout: str, images: int, shard_size: int) -> int:
    """The synthetic output in `layout` under `root`; return the number of files written."""
    rng = np.random.default_rng(0)  # the same pixels in both layouts
    shards = plan(images, shard_size)
    root.mkdir(parents=True)
    for shard in shards:
        files = shard_files(shard, rng)
        (root / shard.name).mkdir()
        for name, data in files.items():
            (root / name).write_bytes(data)
        if layout == "packed":
            packed.pack(root / shard.name, root / shard.archive)
            shutil.rmtree(root / shard.name)
            files = {packed_name(shard, name): data for name, data in files.items()}
        names = sorted(n for n in files if not n.endswith("_label.png"))
        pq.write_table(pa.table({"image": names, "label": [n[: -len(".png")] + "_label.png" for n in names]}),
                       root / shard.manifest)  # fmt: skip
    pq.write_table(pa.concat_tables([pq.read_table(root / s.manifest) for s in shards]), root / "train.parquet")
    return sum(1 for p in root.rglob("*") if p.is_file())


def median_seconds(repo: Path, command: list[str], repeats: int) -> list[float]:
    """Wall seconds of `repeats` runs of a DVC command that must find nothing to do."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run(command, repo, timeout=600)
        times.append(time.perf_counter() - start)
        if not any(phrase in out for phrase in UP_TO_DATE):
            raise RuntimeError(f"{' '.join(command)} was not a no-op:\n{out}")
    return times


def measure(repo: Path, layout: str, images: int, shard_size: int, repeats: int) -> dict:
    """Make a repo with the output in `layout`, commit it to DVC, and time the no-op commands."""
    repo.mkdir(parents=True)
    run(["git", "init", "-q"], repo)
    run(dvc("init", "-q"), repo)
    (repo / "dvc.yaml").write_text(STAGE)
    (repo / "spec.json").write_text(json.dumps({"layout": layout, "images": images, "shard_size": shard_size}))
    start = time.perf_counter()
    files = write_output(repo / "data" / "synthetic", layout, images, shard_size)
    written = time.perf_counter() - start
    start = time.perf_counter()
    run(dvc("commit", "--force", "-q", "synthesize"), repo)
    committed = time.perf_counter() - start
    status = median_seconds(repo, dvc("status"), repeats)
    repro = median_seconds(repo, dvc("repro"), repeats)
    return {"layout": layout, "files": files, "bytes": sum(p.stat().st_size for p in (repo / "data").rglob("*")
                                                          if p.is_file()),
            "write_s": written, "commit_s": committed, "status_s": statistics.median(status), "status_runs_s": status,
            "repro_s": statistics.median(repro), "repro_runs_s": repro}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--shard-size", type=int, default=256, help="synthesize.shard_size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="make the repos here and keep them")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    load_before = os.getloadavg()
    base = args.keep or Path(tempfile.mkdtemp(prefix="dgsynth-dvc-scale-"))
    try:
        rows = [measure(base / layout, layout, args.images, args.shard_size, args.repeats) for layout in LAYOUTS]
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"no-op DVC over {args.images} images + labels in shards of {args.shard_size}, median of {args.repeats} "
          f"(load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} cores)")
    print(f"{'layout':<8}{'files':>8}{'MB':>8}{'write s':>9}{'commit s':>10}{'status s':>10}{'repro s':>9}  target")
    for r in rows:
        r["meets_target"] = r["status_s"] <= TARGET_S and r["repro_s"] <= TARGET_S
        verdict = "meets" if r["meets_target"] else "misses"
        print(f"{r['layout']:<8}{r['files']:>8}{r['bytes'] / 1e6:>8.1f}{r['write_s']:>9.1f}{r['commit_s']:>10.1f}"
              f"{r['status_s']:>10.2f}{r['repro_s']:>9.2f}  {verdict} {TARGET_S:g} s")
    result = {"images": args.images, "shard_size": args.shard_size, "repeats": args.repeats, "target_s": TARGET_S,
              "rows": rows, "dvc": run(dvc("--version"), Path.cwd(), timeout=60).strip(),
              "machine": machine(load_average_before=load_before, load_average_after=load_after),
              "command": " ".join(["python", *sys.argv]), "commit": commit()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
