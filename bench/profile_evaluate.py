"""Benchmark: where the evaluate stage spends its time, for one segmentation and one detection model.

    python bench/profile_evaluate.py [--domain world_a_fog]

Each task's source-only model of seed 0 (models/<task>/source-s0: run `dvc repro` first) scores the evaluation split
of `domain` as the evaluate stage does (`pipeline.<task>.evaluate.scorer`, the stage's batch size): seconds per
image over the whole domain (after one warm-up pass), then torch's profiler over one more pass gives the operators
with the most CPU time of their own (`bench/profile_train.py`'s table). The stage runs every model of both tasks on
every domain, so its time is about models x domains x images x these seconds per image. Prints a table and writes
reports/bench/profile-evaluate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import yaml
from profile_train import OPERATORS, print_operators, top_operators
from provenance import commit, device

from pipeline import mm
from pipeline.det.evaluate import scorer as det_scorer
from pipeline.manifest import read_manifest
from pipeline.seg.evaluate import scorer as seg_scorer

OUT = Path("reports/bench/profile-evaluate.json")
SCORERS = {"seg": seg_scorer, "det": det_scorer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="world_a_fog")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    batch, split = params["evaluate"]["batch"], params["evaluate"]["split"]
    manifest = Path("data/domains") / args.domain / f"{split}.parquet"
    images = len(read_manifest(manifest))
    mm.setup()
    report = {"domain": args.domain, "images": images, "batch": batch, "tasks": {}}
    with torch.no_grad():
        for task, scorer in SCORERS.items():
            evaluate = scorer(Path("models") / task / "source-s0")
            evaluate(manifest, batch, 0, f"{task} warm-up")
            start = time.perf_counter()
            evaluate(manifest, batch, 0, f"{task} timed")
            seconds = (time.perf_counter() - start) / images
            operators = top_operators(lambda: evaluate(manifest, batch, 0, f"{task} profiled"), 1, OPERATORS)
            report["tasks"][task] = {"seconds_per_image": seconds, "operators": operators}
            print(f"\n{task}: {seconds:.3f} s per image on {args.domain} ({images} images, batch {batch})")
            print_operators(operators)
    report |= {"commit": commit(), "machine": device(cuda=False),
               "load_average": os.getloadavg()[0]}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
